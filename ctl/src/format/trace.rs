//! `trace` as text, in the shape of `ovs-appctl ofproto/trace`.

use std::fmt::Write as _;

use crate::results::TraceResult;

pub fn trace(r: &TraceResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Flow: {}",
        r.flow
            .as_deref()
            .unwrap_or("(the frame could not be parsed)")
    );
    let _ = writeln!(out, "Frame: {} bytes", r.frame_hex.len() / 2);
    let _ = writeln!(out, "Input port: {}", r.in_port);
    for i in &r.ingress {
        let _ = writeln!(out, "  {i}");
    }
    let title = format!("bridge(\"{}\")", r.bridge);
    let _ = writeln!(out, "\n{title}\n{}", "-".repeat(title.len()));
    for s in &r.steps {
        let _ = writeln!(out, " {s}");
    }
    let _ = writeln!(
        out,
        "\nDatapath actions: {}",
        if r.datapath_actions.is_empty() {
            "drop".to_string()
        } else {
            r.datapath_actions.join(",")
        }
    );
    for o in &r.outputs {
        let _ = writeln!(out, "Output to {} ({}): {}", o.port, o.kind, o.flow);
        for (k, v) in &o.details {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    if let Some(d) = &r.drop {
        let _ = writeln!(out, "Dropped: {d}");
    }
    for c in &r.caches {
        let state = match (&c.cache, c.answered) {
            (_, false) => "did not answer".to_string(),
            (None, true) => "not cached (the next such frame takes the slow path)".to_string(),
            (Some(level), true) => format!(
                "{level} holds it{}",
                if c.same_decision {
                    ", same decision"
                } else {
                    ", with a different decision (being revalidated)"
                }
            ),
        };
        let _ = writeln!(out, "Cache of pmd{}: {state}", c.pmd);
    }
    out
}
