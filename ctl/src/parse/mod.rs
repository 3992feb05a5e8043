//! Parsing at the edge: everything an operator or the state file gives as text becomes a typed
//! value here, with a one-line error naming the field. `port` turns port options into a
//! [`datapath::PortKind`] and [`datapath::PortSettings`] (and back, for `show` and the state
//! file); `qos` does the same for a port's scheduler, trust and policer settings.

pub mod bond;
pub mod port;
pub mod qos;

use std::collections::BTreeMap;

/// Splits `add-port` option tokens (`type=ring`, `iface=veth0`, ...) into the port type and the
/// remaining options. `type` is required; a key given twice or a token that is not `key=value`
/// is an error.
pub fn split_port_options(tokens: &[String]) -> Result<(String, BTreeMap<String, String>), String> {
    let mut kind: Option<String> = None;
    let mut options = BTreeMap::new();
    for tok in tokens {
        let Some((key, value)) = tok.split_once('=') else {
            return Err(format!(
                "malformed option '{}' (expected key=value)",
                crate::protocol::truncate(tok, 64)
            ));
        };
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "malformed option '{}' (expected key=value)",
                crate::protocol::truncate(tok, 64)
            ));
        }
        if value.is_empty() {
            return Err(format!("option {key} has an empty value"));
        }
        if value.chars().any(|c| c.is_control()) {
            return Err(format!("option {key} has a control character in its value"));
        }
        if key == "type" {
            if kind.is_some() {
                return Err("option type given twice".into());
            }
            kind = Some(value.to_string());
        } else if options.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("option {key} given twice"));
        }
    }
    let kind = kind.ok_or_else(|| "missing type= (e.g. type=ring or type=afxdp)".to_string())?;
    Ok((kind, options))
}

/// Checks a bridge or port name: 1 to 64 characters from `A-Z a-z 0-9 _ . : -`, not starting
/// with `-`. (Names appear in rule text such as `in_port=p1`, so separators are not allowed.)
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
    if !ok_chars || name.len() > 64 || name.starts_with('-') {
        return Err(format!(
            "invalid {what} name '{}' (use up to 64 characters from A-Z a-z 0-9 _ . : -)",
            crate::protocol::truncate(name, 64)
        ));
    }
    Ok(())
}

/// `KEY=VALUE` tokens of `set port` (an empty value clears the setting): a key given twice, or a
/// token without `=`, is an error.
pub fn split_settings(tokens: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut changes = BTreeMap::new();
    for t in tokens {
        let Some((k, v)) = t.split_once('=') else {
            return Err(format!(
                "bad setting {:?}: expected KEY=VALUE",
                crate::protocol::truncate(t, 64)
            ));
        };
        if k.is_empty() || changes.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!(
                "bad or repeated key in {:?}",
                crate::protocol::truncate(t, 64)
            ));
        }
    }
    Ok(changes)
}

/// Parses a CPU list such as `1`, `0,1` or `2-4,6` (empty: no cores).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut cores = Vec::new();
    let s = s.trim();
    if s.is_empty() {
        return Ok(cores);
    }
    for part in s.split(',') {
        let part = part.trim();
        let bad = || format!("invalid CPU list '{s}' (expected e.g. 1 or 0,1 or 2-4)");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad())?,
                b.trim().parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<usize>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo > hi || hi >= 4096 {
            return Err(bad());
        }
        for c in lo..=hi {
            if cores.contains(&c) {
                return Err(format!("CPU {c} listed twice in '{s}'"));
            }
            cores.push(c);
        }
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn port_options() {
        let (k, o) =
            split_port_options(&toks(&["type=afxdp", "iface=veth0", "xdp-mode=native"])).unwrap();
        assert_eq!(k, "afxdp");
        assert_eq!(o.len(), 2);
        assert_eq!(o["iface"], "veth0");
        assert_eq!(o["xdp-mode"], "native");
        let (k, o) = split_port_options(&toks(&["peer=p2", "type=ring"])).unwrap();
        assert_eq!(k, "ring");
        assert_eq!(o["peer"], "p2");
        // Values may contain '=' (only the first one splits).
        let (_, o) = split_port_options(&toks(&["type=x", "a=b=c"])).unwrap();
        assert_eq!(o["a"], "b=c");
    }

    #[test]
    fn port_option_errors() {
        let e = |v: &[&str]| split_port_options(&toks(v)).unwrap_err();
        assert!(e(&["iface=veth0"]).contains("missing type="));
        assert!(e(&[]).contains("missing type="));
        assert!(e(&["type=ring", "type=afxdp"]).contains("type given twice"));
        assert!(e(&["type=afxdp", "iface=a", "iface=b"]).contains("iface given twice"));
        assert!(e(&["type=ring", "peer"]).contains("malformed option 'peer'"));
        assert!(e(&["type=ring", "=x"]).contains("malformed"));
        assert!(e(&["type=ring", "a b=x"]).contains("malformed"));
        assert!(e(&["type=", "x=y"]).contains("empty value"));
        assert!(e(&["type=ring", "x=a\nb"]).contains("control character"));
    }

    #[test]
    fn names() {
        assert!(check_name("port", "p1").is_ok());
        assert!(check_name("port", "vhost-user-1").is_ok());
        assert!(check_name("port", "eth0.100").is_ok());
        assert!(check_name("port", "").is_err());
        assert!(check_name("port", "a,b").is_err());
        assert!(check_name("port", "a=b").is_err());
        assert!(check_name("port", "a b").is_err());
        assert!(check_name("port", "-x").is_err());
        assert!(check_name("port", &"x".repeat(65)).is_err());
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("1").unwrap(), vec![1]);
        assert_eq!(parse_cpu_list("0,1").unwrap(), vec![0, 1]);
        assert_eq!(parse_cpu_list("2-4,6").unwrap(), vec![2, 3, 4, 6]);
        assert!(parse_cpu_list("1,1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("0-99999").is_err());
        assert!(parse_cpu_list("1,").is_err());
    }
}
