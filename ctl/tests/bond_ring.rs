//! Bonds through the real `vswitchd` and `vswitchctl` (no root needed): two bridges, each
//! with a bond of two ring members joined to the other bond's members, LACP between them;
//! `bond-show`, `lacp-show` (text and JSON), live settings, `bond-set-active-member`,
//! persistence across a restart, and the errors operators see.

mod ring_daemon;

use std::thread::sleep;
use std::time::{Duration, Instant};

use ring_daemon::*;

fn bonds(d: &Daemon) -> serde_json::Value {
    serde_json::from_str(&d.ok(&["--format", "json", "bond-show"])).unwrap()
}

fn bond<'a>(all: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    all.as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .expect("bond listed")
}

fn wait_negotiated(d: &Daemon) {
    let t0 = Instant::now();
    loop {
        let all = bonds(d);
        let ok = ["bond0", "bond1"].iter().all(|n| {
            let b = bond(&all, n);
            b["lacp_negotiated"] == true
                && b["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["enabled"] == true)
        });
        if ok {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not negotiated: {all:#}"
        );
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn bonds_negotiate_report_change_live_and_survive_a_restart() {
    let dir = temp_dir("bond");
    let _cleanup = TempDir(dir.clone());
    let d = Daemon::start(&dir);
    d.ok(&["add-br", "br0"]);
    d.ok(&["add-br", "br1"]);
    d.ok(&[
        "add-bond",
        "br0",
        "bond0",
        "a0",
        "b0",
        "member-type=ring",
        "a0.peer=a1",
        "b0.peer=b1",
        "bond_mode=balance-tcp",
        "lacp=active",
        "lacp-time=fast",
        "tag=10",
    ]);
    d.ok(&[
        "add-bond",
        "br1",
        "bond1",
        "a1",
        "b1",
        "member-type=ring",
        "bond_mode=balance-tcp",
        "lacp=active",
        "lacp-time=fast",
        "lacp-system-id=02:00:00:00:00:b1",
    ]);
    wait_negotiated(&d);
    let text = d.ok(&["lacp-show", "bond0"]);
    assert!(text.contains("status: active negotiated"), "{text}");
    assert!(text.contains("partner sys_id: 02:00:00:00:00:b1"), "{text}");
    assert!(
        text.contains(
            "actor state: activity timeout aggregation synchronized collecting distributing"
        ),
        "{text}"
    );
    let text = d.ok(&["bond-show", "bond0"]);
    assert!(text.contains("bond_mode: balance-tcp"), "{text}");
    assert!(text.contains("member a0: enabled"), "{text}");
    // show lists the bond with its members and settings.
    let show = d.ok(&["show"]);
    assert!(
        show.contains("bond0") && show.contains("members=a0,b0"),
        "{show}"
    );

    // Errors name the problem.
    assert!(
        d.fails(&["add-bond", "br0", "bond2", "a0"])
            .contains("already the name of a bond member")
    );
    assert!(
        d.fails(&["add-bond", "br0", "bond2", "c0", "bond_mode=balance-tcp"])
            .contains("needs lacp")
    );
    assert!(
        d.fails(&["set", "port", "bond0", "bond-primary=zz"])
            .contains("not a member")
    );
    assert!(
        d.fails(&["bond-set-active-member", "bond0", "zz"])
            .contains("no member zz")
    );
    assert!(
        d.fails(&["lacp-show", "nope"])
            .contains("no bond named nope")
    );

    // Live: to active-backup with a primary; the operator moves the active member.
    d.ok(&[
        "set",
        "port",
        "bond0",
        "bond_mode=active-backup",
        "bond-primary=b0",
    ]);
    let t0 = Instant::now();
    while bond(&bonds(&d), "bond0")["policy"] != "active-backup" {
        assert!(t0.elapsed() < Duration::from_secs(5));
        sleep(Duration::from_millis(20));
    }
    d.ok(&["bond-set-active-member", "bond0", "a0"]);
    let b = bonds(&d);
    let active: Vec<_> = bond(&b, "bond0")["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["active"] == true)
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(active, ["a0"]);

    // Restart: the bonds come back from the state file, with their live settings.
    d.stop();
    let d = Daemon::start(&dir);
    wait_negotiated(&d);
    let b = bonds(&d);
    assert_eq!(bond(&b, "bond0")["bond_mode"], "active-backup");
    assert_eq!(bond(&b, "bond0")["settings"]["bond-primary"], "b0");
    d.ok(&["del-bond", "bond1"]);
    assert!(
        d.fails(&["del-bond", "nope"])
            .contains("no port named nope")
    );
    let b = bonds(&d);
    assert_eq!(b.as_array().unwrap().len(), 1);
    // The members' names are free again.
    d.ok(&["add-port", "br1", "a1", "type=ring"]);
    d.stop();
}
