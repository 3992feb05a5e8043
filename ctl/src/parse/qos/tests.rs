use super::*;

fn opts(kv: &[(&str, &str)]) -> Options {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn rates_and_sizes() {
    assert_eq!(parse_rate("r", "1Gbit").unwrap(), 125_000_000);
    assert_eq!(parse_rate("r", "100mbit").unwrap(), 12_500_000);
    assert_eq!(parse_rate("r", "10Mbit").unwrap(), 1_250_000);
    assert_eq!(parse_rate("r", "500kbit").unwrap(), 62_500);
    assert_eq!(parse_rate("r", "8000").unwrap(), 1000);
    assert!(parse_rate("r", "0").unwrap_err().contains("at least 8"));
    assert!(parse_rate("r", "fast").unwrap_err().contains("bad r"));
    assert!(parse_rate("r", "99999999999999999999Gbit").is_err());
    for r in [125_000_000u64, 12_500_000, 62_500, 1000, 7] {
        assert_eq!(
            parse_rate("r", &render_rate(r)).unwrap(),
            r,
            "{}",
            render_rate(r)
        );
    }
    assert_eq!(render_rate(125_000_000), "1Gbit");
    assert_eq!(parse_bytes("b", "64KiB").unwrap(), 65_536);
    assert_eq!(parse_bytes("b", "64KB").unwrap(), 64_000);
    assert_eq!(parse_bytes("b", "15140").unwrap(), 15_140);
    assert!(parse_bytes("b", "-1").is_err());
}

#[test]
fn set_qos_then_set_queue_round_trips() {
    let port = opts(&[
        ("max-rate", "1Gbit"),
        ("overhead", "24"),
        ("dscp-map", "46:6,8:1"),
    ]);
    let mut cfg = parse_qos(&port, &QosConfig::default()).unwrap();
    let shaper = cfg.scheduler.shaper.unwrap();
    assert_eq!((shaper.rate, shaper.burst), (125_000_000, 1_250_000));
    assert_eq!(cfg.classes.dscp[46].value(), 6);
    assert_eq!(cfg.classes.dscp[8].value(), 1);
    assert_eq!(
        cfg.classes.dscp[48].value(),
        6,
        "other entries keep the default"
    );
    let q = &mut cfg.scheduler.queues[0];
    *q = parse_queue(&opts(&[("weight", "4"), ("max-rate", "100Mbit")]), q).unwrap();
    let (port, queues) = render_qos(&cfg);
    assert_eq!(port["max-rate"], "1Gbit");
    assert!(
        !port.contains_key("burst"),
        "a default burst is not written"
    );
    assert_eq!(port["dscp-map"], "8:1,46:6");
    assert_eq!(queues[&0]["weight"], "4");
    let queues: BTreeMap<String, Options> = queues
        .into_iter()
        .map(|(c, o)| (c.to_string(), o))
        .collect();
    assert_eq!(parse_qos_parts(&port, &queues).unwrap(), cfg);
    // Changing the rate of a configured port keeps everything else.
    let again = parse_qos(&opts(&[("max-rate", "100Mbit")]), &cfg).unwrap();
    assert_eq!(again.scheduler.queues, cfg.scheduler.queues);
    assert_eq!(again.classes, cfg.classes);
    assert_eq!(again.scheduler.shaper.unwrap().burst, 125_000);
}

#[test]
fn bad_settings_are_one_line_errors() {
    let e = |kv: &[(&str, &str)]| parse_qos(&opts(kv), &QosConfig::default()).unwrap_err();
    assert!(e(&[]).contains("needs max-rate"));
    assert!(e(&[("max-rate", "0")]).contains("max-rate"));
    assert!(e(&[("max-rate", "1Gbit"), ("burst", "100")]).contains("burst"));
    assert!(e(&[("max-rate", "1Gbit"), ("dscp-map", "46:9")]).contains("unknown class"));
    assert!(e(&[("max-rate", "1Gbit"), ("dscp-map", "64:1")]).contains("dscp-map"));
    assert!(e(&[("max-rate", "1Gbit"), ("color", "red")]).contains("unknown qos option"));
    let q = QueueConfig::default();
    let eq = |kv: &[(&str, &str)]| parse_queue(&opts(kv), &q).unwrap_err();
    assert!(eq(&[("weight", "0")]).contains("weight"));
    assert!(eq(&[("limit", "1000000")]).contains("limit"));
    assert!(eq(&[("strict", "yes")]).contains("strict"));
    let parts: BTreeMap<String, Options> = [("8".to_string(), opts(&[("weight", "2")]))].into();
    assert!(
        parse_qos_parts(&opts(&[("max-rate", "1Gbit")]), &parts)
            .unwrap_err()
            .contains("unknown class")
    );
    let min_above_max = opts(&[("min-rate", "2Mbit"), ("max-rate", "1Mbit")]);
    let parts: BTreeMap<String, Options> = [("3".to_string(), min_above_max)].into();
    assert!(
        parse_qos_parts(&opts(&[("max-rate", "1Gbit")]), &parts)
            .unwrap_err()
            .contains("min-rate")
    );
}

#[test]
fn trust_values() {
    for (text, t) in [
        ("dscp", Trust::Dscp),
        ("pcp", Trust::Pcp),
        ("untrusted", Trust::Untrusted { dscp: 0 }),
        ("untrusted:10", Trust::Untrusted { dscp: 10 }),
    ] {
        assert_eq!(parse_trust(text).unwrap(), t);
        assert_eq!(render_trust(t), text);
    }
    assert!(parse_trust("untrusted:64").is_err());
    assert!(parse_trust("all").is_err());
}

#[test]
fn policers_round_trip_and_check_their_keys() {
    let p = parse_policer(&opts(&[("cir", "10Mbit")])).unwrap();
    assert_eq!(
        p.profile,
        Profile::SrTcm {
            cir: 1_250_000,
            cbs: 12_500,
            ebs: 0
        }
    );
    assert_eq!(p.actions, DEFAULT_ACTIONS);
    let p = parse_policer(&opts(&[
        ("type", "trtcm"),
        ("cir", "1Gbit"),
        ("pir", "2Gbit"),
        ("yellow", "dscp:12"),
        ("color-aware", "true"),
    ]))
    .unwrap();
    assert_eq!(p.actions[1], Action::RemarkDscp(12));
    assert!(p.color_aware);
    assert_eq!(parse_policer(&render_policer(&p)).unwrap(), p);
    let p = parse_policer(&opts(&[
        ("type", "rfc4115"),
        ("cir", "1Mbit"),
        ("eir", "1Mbit"),
    ]))
    .unwrap();
    assert_eq!(parse_policer(&render_policer(&p)).unwrap(), p);
    let e = |kv: &[(&str, &str)]| parse_policer(&opts(kv)).unwrap_err();
    assert!(e(&[]).contains("cir"));
    assert!(e(&[("cir", "1Mbit"), ("pir", "2Mbit")]).contains("does not apply"));
    assert!(e(&[("type", "trtcm"), ("cir", "2Mbit"), ("pir", "1Mbit")]).contains("pir"));
    assert!(e(&[("type", "trtcm"), ("cir", "2Mbit")]).contains("needs pir"));
    assert!(e(&[("cir", "1Mbit"), ("red", "paint")]).contains("red"));
    assert!(e(&[("cir", "1Mbit"), ("type", "wfq")]).contains("type"));
    assert!(e(&[("cir", "1Mbit"), ("cbs", "0")]).contains("cbs"));
}
