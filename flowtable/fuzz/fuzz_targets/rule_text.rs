//! The ovs-ofctl parsers (rules, matches, meters) must never panic, and what they accept must
//! survive format → parse.
#![no_main]

use libfuzzer_sys::fuzz_target;

fn by_name(n: &str) -> Option<flowtable::PortNo> {
    n.strip_prefix('p')?.parse().ok().filter(|p| (1..=4).contains(p))
}

fn name_of(p: flowtable::PortNo) -> Option<String> {
    (1..=4).contains(&p).then(|| format!("p{p}"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = flowtable::parse_match(text, &by_name);
    if let Ok(rule) = flowtable::parse_rule(text, &by_name) {
        let again = flowtable::format_rule(&rule, &name_of);
        let back = flowtable::parse_rule(&again, &by_name);
        assert_eq!(back.as_ref().ok(), Some(&rule), "{again}");
    }
    if let Ok(m) = flowtable::parse_meter(text) {
        let again = flowtable::format_meter(&m);
        assert_eq!(flowtable::parse_meter(&again).ok(), Some(m), "{again}");
    }
});
