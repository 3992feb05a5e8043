//! `ovs-ofctl add-meter` syntax: `meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000`.
//! A meter has a drop band, a `dscp_remark` band, or both (remark at the lower rate, drop at
//! the higher); rates in kbit/s (`pktps` meters are refused), burst sizes in kbit.

use super::{RuleError, bad, err, num};

/// Highest meter id (OpenFlow reserves the ids above for virtual meters).
pub const MAX_METER_ID: u32 = 0xffff_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandKind {
    Drop,
    /// Raise an AF frame's drop precedence by this many levels.
    DscpRemark {
        prec_level: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterBand {
    pub kind: BandKind,
    /// kbit/s.
    pub rate: u32,
    /// kbit; None: the switch's default (10 ms at the rate).
    pub burst_size: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterSpec {
    pub id: u32,
    /// At most one band of each kind; a remark band below the drop band's rate.
    pub bands: Vec<MeterBand>,
}

impl MeterSpec {
    pub fn band(&self, drop: bool) -> Option<&MeterBand> {
        self.bands
            .iter()
            .find(|b| matches!(b.kind, BandKind::Drop) == drop)
    }
}

/// Parses `meter=N,[kbps],[burst],[stats],bands=type=...,rate=...[,burst_size=...][,prec_level=...]...`
/// (commas or spaces between tokens).
pub fn parse_meter(text: &str) -> Result<MeterSpec, RuleError> {
    let mut id = None;
    let mut bands: Vec<MeterBand> = Vec::new();
    let mut in_bands = false;
    for tok in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
    {
        let tok = match tok
            .strip_prefix("bands=")
            .or_else(|| tok.strip_prefix("band="))
        {
            Some(rest) => {
                in_bands = true;
                rest
            }
            None => tok,
        };
        let (key, value) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        };
        match (key, value, in_bands) {
            ("meter", Some(v), false) => {
                let n = num("meter", v, u64::from(MAX_METER_ID))?;
                if n == 0 {
                    return Err(bad(v, "meter", &format!("1-{MAX_METER_ID}")));
                }
                id = Some(n as u32);
            }
            ("kbps" | "burst" | "stats", None, false) => {}
            ("pktps", None, false) => {
                return Err(err("pktps meters are not supported (use kbps)"));
            }
            ("type", Some(t), true) => {
                let kind = match t {
                    "drop" => BandKind::Drop,
                    "dscp_remark" => BandKind::DscpRemark { prec_level: 1 },
                    _ => return Err(bad(t, "band type", "drop or dscp_remark")),
                };
                bands.push(MeterBand {
                    kind,
                    rate: 0,
                    burst_size: None,
                });
            }
            (k @ ("rate" | "burst_size" | "prec_level"), Some(v), true) => {
                let band = bands
                    .last_mut()
                    .ok_or_else(|| err(format!("{k}= before a band's type=")))?;
                match k {
                    "rate" => band.rate = num("rate", v, u64::from(u32::MAX))? as u32,
                    "burst_size" => {
                        band.burst_size = Some(num("burst_size", v, u64::from(u32::MAX))? as u32)
                    }
                    _ => match &mut band.kind {
                        BandKind::DscpRemark { prec_level } => {
                            *prec_level = num("prec_level", v, 2)? as u8;
                            if *prec_level == 0 {
                                return Err(bad(v, "prec_level", "1-2"));
                            }
                        }
                        BandKind::Drop => {
                            return Err(err("prec_level= is for dscp_remark bands"));
                        }
                    },
                }
            }
            _ => return Err(err(format!("unexpected \"{tok}\" in a meter"))),
        }
    }
    let id = id.ok_or_else(|| err("missing \"meter=N\""))?;
    let m = MeterSpec { id, bands };
    check(&m)?;
    Ok(m)
}

fn check(m: &MeterSpec) -> Result<(), RuleError> {
    if m.bands.is_empty() {
        return Err(err("a meter needs a band (bands=type=drop,rate=KBPS)"));
    }
    let drops = m.bands.iter().filter(|b| b.kind == BandKind::Drop).count();
    if drops > 1 || m.bands.len() - drops > 1 {
        return Err(err("a meter has at most one drop and one dscp_remark band"));
    }
    if let Some(b) = m.bands.iter().find(|b| b.rate == 0) {
        let what = match b.kind {
            BandKind::Drop => "drop",
            BandKind::DscpRemark { .. } => "dscp_remark",
        };
        return Err(err(format!(
            "the {what} band needs a rate above 0 (kbit/s)"
        )));
    }
    if let (Some(d), Some(r)) = (m.band(true), m.band(false))
        && r.rate >= d.rate
    {
        return Err(err(
            "the dscp_remark band's rate must be below the drop band's",
        ));
    }
    Ok(())
}

/// The canonical text of a meter (what `dump-meters` shows and the state file keeps).
pub fn format_meter(m: &MeterSpec) -> String {
    let mut s = format!("meter={},kbps", m.id);
    if m.bands.iter().any(|b| b.burst_size.is_some()) {
        s.push_str(",burst");
    }
    s.push_str(",bands=");
    let bands: Vec<String> = m
        .bands
        .iter()
        .map(|b| {
            let mut t = match b.kind {
                BandKind::Drop => format!("type=drop,rate={}", b.rate),
                BandKind::DscpRemark { prec_level } => {
                    format!("type=dscp_remark,rate={},prec_level={prec_level}", b.rate)
                }
            };
            if let Some(bs) = b.burst_size {
                t.push_str(&format!(",burst_size={bs}"));
            }
            t
        })
        .collect();
    s.push_str(&bands.join(","));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovs_ofctl_meters_parse_and_print_back() {
        let m = parse_meter("meter=1,kbps,burst,stats,bands=type=drop,rate=10000,burst_size=1000")
            .unwrap();
        assert_eq!(m.id, 1);
        assert_eq!(
            m.bands,
            vec![MeterBand {
                kind: BandKind::Drop,
                rate: 10000,
                burst_size: Some(1000)
            }]
        );
        assert_eq!(
            format_meter(&m),
            "meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000"
        );
        let two = parse_meter(
            "meter=7 kbps bands=type=dscp_remark,rate=1000,prec_level=2,type=drop,rate=2000",
        )
        .unwrap();
        assert_eq!(
            two.band(false).unwrap().kind,
            BandKind::DscpRemark { prec_level: 2 }
        );
        assert_eq!(parse_meter(&format_meter(&two)).unwrap(), two);
    }

    #[test]
    fn bad_meters_are_one_line_errors() {
        let e = |t: &str| parse_meter(t).unwrap_err().0;
        assert!(e("kbps,bands=type=drop,rate=1").contains("missing"));
        assert!(e("meter=0,bands=type=drop,rate=1").contains("meter"));
        assert!(e("meter=1,pktps,bands=type=drop,rate=1").contains("pktps"));
        assert!(e("meter=1").contains("needs a band"));
        assert!(e("meter=1,bands=type=drop,rate=0").contains("rate above 0"));
        assert!(e("meter=1,bands=type=drop,rate=5,type=drop,rate=6").contains("at most one"));
        assert!(e("meter=1,bands=type=foo,rate=5").contains("band type"));
        assert!(e("meter=1,bands=rate=5").contains("before a band"));
        assert!(
            e("meter=1,bands=type=dscp_remark,rate=5,type=drop,rate=5").contains("below the drop")
        );
        assert!(e("meter=1,bands=type=drop,rate=5,prec_level=1").contains("dscp_remark"));
        assert!(e("meter=1,color=red").contains("unexpected"));
    }
}
