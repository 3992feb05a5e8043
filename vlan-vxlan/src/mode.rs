//! VLAN port modes, as Open vSwitch users know them (`tag`, `trunks`, `vlan_mode`, `cvlans`):
//! which frames a port admits and on which bridge VLAN, and how a frame on a bridge VLAN leaves
//! by a port. Used by the NORMAL action.

use crate::tag::TPID_8021Q;
use crate::vlan_set::VlanSet;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum VlanMode {
    /// No VLAN configuration: a trunk of every VLAN (untagged frames are VLAN 0).
    #[default]
    TrunkAll,
    /// `tag=N`: untagged (or priority-tagged) frames on VLAN N; leaves untagged.
    Access(u16),
    /// `trunks=LIST`: tagged frames of the listed VLANs (untagged = VLAN 0 if listed).
    Trunk(VlanSet),
    /// `vlan_mode=native-untagged tag=N trunks=LIST`: untagged in/out on N, others tagged.
    NativeUntagged { tag: u16, trunks: VlanSet },
    /// `vlan_mode=native-tagged tag=N trunks=LIST`: untagged in on N, everything tagged out.
    NativeTagged { tag: u16, trunks: VlanSet },
    /// `vlan_mode=dot1q-tunnel tag=N [cvlans=LIST]`: every frame (customer-tagged or not) on
    /// service VLAN N, the customer tag kept as payload; frames of VLAN N leave with the service
    /// tag removed (exposing the customer tag). On trunks such frames carry an 802.1ad outer tag.
    Dot1qTunnel { tag: u16, cvlans: Option<VlanSet> },
}

/// Why a port refuses a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VlanDrop {
    /// Access port got a frame tagged with a non-zero VID.
    TaggedOnAccess,
    /// Trunk (or native) port got a VLAN it does not carry.
    VlanNotAllowed,
    /// dot1q-tunnel port got a customer VLAN outside `cvlans`.
    CvlanNotAllowed,
}

/// The frame's outer tags as parsed: `(tpid, tci)` of the outer tag, and the inner tag's TCI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameTags {
    pub outer: Option<(u16, u16)>,
    pub inner: Option<u16>,
}

/// Where an admitted frame belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// Bridge VLAN.
    pub vlan: u16,
    /// 802.1p priority carried by the frame (0 if untagged).
    pub pcp: u8,
    /// The frame's own outer tag (to be removed before it is re-tagged on egress). False for
    /// dot1q-tunnel ports, where the customer tag stays as payload.
    pub strip_outer: bool,
}

/// The frame form a port wants for a given bridge VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Egress {
    /// The port does not carry this VLAN.
    Skip,
    Untagged,
    /// Tagged with this TPID and VID.
    Tagged {
        tpid: u16,
        vid: u16,
    },
}

fn vid(tci: u16) -> u16 {
    tci & 0x0fff
}

fn pcp(tci: u16) -> u8 {
    (tci >> 13) as u8
}

impl VlanMode {
    /// Decides whether the port admits a frame with these tags, and on which VLAN.
    pub fn admit(&self, tags: FrameTags) -> Result<Admitted, VlanDrop> {
        // A VID-0 tag only carries a priority: treat it as untagged, keep its PCP.
        let tagged_vid = tags.outer.map(|(_, tci)| vid(tci)).filter(|v| *v != 0);
        let frame_pcp = tags.outer.map(|(_, tci)| pcp(tci)).unwrap_or(0);
        let has_tag = tags.outer.is_some();
        let ok = |vlan| {
            Ok(Admitted {
                vlan,
                pcp: frame_pcp,
                strip_outer: has_tag,
            })
        };
        match self {
            VlanMode::TrunkAll => ok(tagged_vid.unwrap_or(0)),
            VlanMode::Access(tag) => match tagged_vid {
                None => ok(*tag),
                Some(_) => Err(VlanDrop::TaggedOnAccess),
            },
            VlanMode::Trunk(trunks) => {
                let v = tagged_vid.unwrap_or(0);
                if trunks.is_empty() || trunks.contains(v) {
                    ok(v)
                } else {
                    Err(VlanDrop::VlanNotAllowed)
                }
            }
            VlanMode::NativeUntagged { tag, trunks } | VlanMode::NativeTagged { tag, trunks } => {
                match tagged_vid {
                    None => ok(*tag),
                    Some(v) if v == *tag || trunks.is_empty() || trunks.contains(v) => ok(v),
                    Some(_) => Err(VlanDrop::VlanNotAllowed),
                }
            }
            VlanMode::Dot1qTunnel { tag, cvlans } => {
                if let (Some(set), Some(cv)) = (cvlans, tagged_vid)
                    && !set.contains(cv)
                {
                    return Err(VlanDrop::CvlanNotAllowed);
                }
                Ok(Admitted {
                    vlan: *tag,
                    pcp: frame_pcp,
                    strip_outer: false,
                })
            }
        }
    }

    /// How a frame on bridge VLAN `vlan` leaves by this port.
    pub fn egress(&self, vlan: u16) -> Egress {
        let tagged = |vid| {
            if vid == 0 {
                Egress::Untagged
            } else {
                Egress::Tagged {
                    tpid: TPID_8021Q,
                    vid,
                }
            }
        };
        match self {
            VlanMode::TrunkAll => tagged(vlan),
            VlanMode::Access(tag) => {
                if vlan == *tag {
                    Egress::Untagged
                } else {
                    Egress::Skip
                }
            }
            VlanMode::Trunk(trunks) => {
                if trunks.is_empty() || trunks.contains(vlan) {
                    tagged(vlan)
                } else {
                    Egress::Skip
                }
            }
            VlanMode::NativeUntagged { tag, trunks } => {
                if vlan == *tag {
                    Egress::Untagged
                } else if trunks.is_empty() || trunks.contains(vlan) {
                    tagged(vlan)
                } else {
                    Egress::Skip
                }
            }
            VlanMode::NativeTagged { tag, trunks } => {
                if vlan == *tag || trunks.is_empty() || trunks.contains(vlan) {
                    tagged(vlan)
                } else {
                    Egress::Skip
                }
            }
            VlanMode::Dot1qTunnel { tag, .. } => {
                if vlan == *tag {
                    Egress::Untagged
                } else {
                    Egress::Skip
                }
            }
        }
    }

    /// The settings that build this mode with [`VlanMode::from_settings`], in canonical form
    /// (`vlan_mode` only where `tag`/`trunks` alone would not say it).
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        match self {
            VlanMode::TrunkAll => {}
            VlanMode::Access(tag) => v.push(("tag", tag.to_string())),
            VlanMode::Trunk(trunks) => v.push(("trunks", trunks.to_string())),
            VlanMode::NativeUntagged { tag, trunks } | VlanMode::NativeTagged { tag, trunks } => {
                let mode = if matches!(self, VlanMode::NativeUntagged { .. }) {
                    "native-untagged"
                } else {
                    "native-tagged"
                };
                v.push(("vlan_mode", mode.to_string()));
                v.push(("tag", tag.to_string()));
                if !trunks.is_empty() {
                    v.push(("trunks", trunks.to_string()));
                }
            }
            VlanMode::Dot1qTunnel { tag, cvlans } => {
                v.push(("vlan_mode", "dot1q-tunnel".to_string()));
                v.push(("tag", tag.to_string()));
                if let Some(c) = cvlans {
                    v.push(("cvlans", c.to_string()));
                }
            }
        }
        v
    }

    /// Builds a mode from the `vlan_mode`, `tag`, `trunks` and `cvlans` settings.
    pub fn from_settings(
        vlan_mode: Option<&str>,
        tag: Option<u16>,
        trunks: Option<&VlanSet>,
        cvlans: Option<&VlanSet>,
    ) -> Result<VlanMode, String> {
        if let Some(t) = tag
            && !(1..=4094).contains(&t)
        {
            return Err(format!("bad tag {t} (1-4094)"));
        }
        let trunks_or_all = || trunks.cloned().unwrap_or_default();
        let need_tag = |m: &str| tag.ok_or_else(|| format!("vlan_mode={m} needs tag=N"));
        if trunks.is_some_and(VlanSet::is_empty) {
            return Err("trunks= needs at least one VLAN".into());
        }
        if cvlans.is_some_and(VlanSet::is_empty) {
            return Err("cvlans= needs at least one VLAN".into());
        }
        if cvlans.is_some() && vlan_mode != Some("dot1q-tunnel") {
            return Err("cvlans= applies only to vlan_mode=dot1q-tunnel".into());
        }
        match vlan_mode {
            None => match (tag, trunks) {
                (None, None) => Ok(VlanMode::TrunkAll),
                (Some(t), None) => Ok(VlanMode::Access(t)),
                (None, Some(tr)) => Ok(VlanMode::Trunk(tr.clone())),
                (Some(_), Some(_)) => {
                    Err("tag= with trunks= needs vlan_mode=native-untagged or native-tagged".into())
                }
            },
            Some("access") => {
                if trunks.is_some() {
                    return Err("vlan_mode=access takes no trunks=".into());
                }
                Ok(VlanMode::Access(need_tag("access")?))
            }
            Some("trunk") => {
                if tag.is_some() {
                    return Err("vlan_mode=trunk takes no tag=".into());
                }
                Ok(match trunks {
                    Some(t) => VlanMode::Trunk(t.clone()),
                    None => VlanMode::TrunkAll,
                })
            }
            Some("native-untagged") => Ok(VlanMode::NativeUntagged {
                tag: need_tag("native-untagged")?,
                trunks: trunks_or_all(),
            }),
            Some("native-tagged") => Ok(VlanMode::NativeTagged {
                tag: need_tag("native-tagged")?,
                trunks: trunks_or_all(),
            }),
            Some("dot1q-tunnel") => {
                if trunks.is_some() {
                    return Err("vlan_mode=dot1q-tunnel takes no trunks=".into());
                }
                Ok(VlanMode::Dot1qTunnel {
                    tag: need_tag("dot1q-tunnel")?,
                    cvlans: cvlans.cloned(),
                })
            }
            Some(other) => Err(format!(
                "unknown vlan_mode {other:?} (access, trunk, native-untagged, native-tagged, dot1q-tunnel)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u16 = TPID_8021Q;

    fn tagged(v: u16) -> FrameTags {
        FrameTags {
            outer: Some((Q, v)),
            inner: None,
        }
    }

    fn set(s: &str) -> VlanSet {
        VlanSet::parse(s).unwrap()
    }

    #[test]
    fn access_port() {
        let m = VlanMode::Access(10);
        assert_eq!(
            m.admit(FrameTags::default()),
            Ok(Admitted {
                vlan: 10,
                pcp: 0,
                strip_outer: false
            })
        );
        // Priority tag: accepted, PCP kept, tag stripped.
        assert_eq!(
            m.admit(tagged(5 << 13)),
            Ok(Admitted {
                vlan: 10,
                pcp: 5,
                strip_outer: true
            })
        );
        assert_eq!(m.admit(tagged(10)), Err(VlanDrop::TaggedOnAccess));
        assert_eq!(m.egress(10), Egress::Untagged);
        assert_eq!(m.egress(20), Egress::Skip);
    }

    #[test]
    fn trunk_ports() {
        let m = VlanMode::Trunk(set("10,20"));
        assert_eq!(m.admit(tagged(20)).unwrap().vlan, 20);
        assert_eq!(m.admit(tagged(30)), Err(VlanDrop::VlanNotAllowed));
        assert_eq!(m.admit(FrameTags::default()), Err(VlanDrop::VlanNotAllowed));
        assert_eq!(m.egress(10), Egress::Tagged { tpid: Q, vid: 10 });
        assert_eq!(m.egress(30), Egress::Skip);
        let all = VlanMode::TrunkAll;
        assert_eq!(all.admit(FrameTags::default()).unwrap().vlan, 0);
        assert_eq!(all.egress(0), Egress::Untagged);
        assert_eq!(all.egress(7), Egress::Tagged { tpid: Q, vid: 7 });
    }

    #[test]
    fn native_modes() {
        let nu = VlanMode::NativeUntagged {
            tag: 5,
            trunks: set("10"),
        };
        assert_eq!(nu.admit(FrameTags::default()).unwrap().vlan, 5);
        assert_eq!(nu.admit(tagged(10)).unwrap().vlan, 10);
        assert_eq!(nu.admit(tagged(5)).unwrap().vlan, 5);
        assert_eq!(nu.admit(tagged(11)), Err(VlanDrop::VlanNotAllowed));
        assert_eq!(nu.egress(5), Egress::Untagged);
        assert_eq!(nu.egress(10), Egress::Tagged { tpid: Q, vid: 10 });
        let nt = VlanMode::NativeTagged {
            tag: 5,
            trunks: set("10"),
        };
        assert_eq!(nt.egress(5), Egress::Tagged { tpid: Q, vid: 5 });
        assert_eq!(nt.egress(11), Egress::Skip);
    }

    #[test]
    fn dot1q_tunnel() {
        let m = VlanMode::Dot1qTunnel {
            tag: 100,
            cvlans: Some(set("10")),
        };
        assert_eq!(
            m.admit(tagged(10)),
            Ok(Admitted {
                vlan: 100,
                pcp: 0,
                strip_outer: false
            })
        );
        assert_eq!(m.admit(tagged(11)), Err(VlanDrop::CvlanNotAllowed));
        assert_eq!(m.admit(FrameTags::default()).unwrap().vlan, 100);
        assert_eq!(m.egress(100), Egress::Untagged);
        assert_eq!(m.egress(10), Egress::Skip);
    }

    #[test]
    fn settings() {
        assert_eq!(
            VlanMode::from_settings(None, None, None, None),
            Ok(VlanMode::TrunkAll)
        );
        assert_eq!(
            VlanMode::from_settings(None, Some(10), None, None),
            Ok(VlanMode::Access(10))
        );
        assert!(VlanMode::from_settings(None, Some(10), Some(&set("1")), None).is_err());
        assert!(VlanMode::from_settings(Some("native-untagged"), None, None, None).is_err());
        assert!(VlanMode::from_settings(None, Some(4095), None, None).is_err());
        assert!(VlanMode::from_settings(Some("bogus"), None, None, None).is_err());
        assert!(VlanMode::from_settings(Some("access"), Some(3), None, Some(&set("1"))).is_err());
        assert_eq!(
            VlanMode::from_settings(Some("dot1q-tunnel"), Some(3), None, Some(&set("1"))),
            Ok(VlanMode::Dot1qTunnel {
                tag: 3,
                cvlans: Some(set("1"))
            })
        );
    }

    #[test]
    fn settings_round_trip() {
        let modes = [
            VlanMode::TrunkAll,
            VlanMode::Access(10),
            VlanMode::Trunk(set("10,20-30")),
            VlanMode::NativeUntagged {
                tag: 5,
                trunks: set("7"),
            },
            VlanMode::NativeTagged {
                tag: 5,
                trunks: VlanSet::new(),
            },
            VlanMode::Dot1qTunnel {
                tag: 30,
                cvlans: Some(set("1-4")),
            },
            VlanMode::Dot1qTunnel {
                tag: 30,
                cvlans: None,
            },
        ];
        for m in modes {
            let s = m.settings();
            let get = |k: &str| s.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone());
            let parse = |k: &str| get(k).map(|v| VlanSet::parse(&v).unwrap());
            let back = VlanMode::from_settings(
                get("vlan_mode").as_deref(),
                get("tag").map(|t| t.parse().unwrap()),
                parse("trunks").as_ref(),
                parse("cvlans").as_ref(),
            )
            .unwrap();
            assert_eq!(back, m, "{s:?}");
        }
        assert!(VlanMode::from_settings(None, None, Some(&VlanSet::new()), None).is_err());
    }
}
