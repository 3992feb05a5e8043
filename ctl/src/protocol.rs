//! The management protocol: over a Unix stream socket, one JSON request per line, one JSON reply
//! per line.
//!
//! Request: `{"version":1,"command":"add-port","args":["br0","p1","type=ring"]}`
//! Reply: `{"ok":true,"result":<json>}` or `{"ok":false,"error":"one-line message"}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest request line accepted (bytes, without the newline).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A decoded request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub version: u32,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
}

impl Request {
    pub fn new(command: impl Into<String>, args: Vec<String>) -> Self {
        Request {
            version: PROTOCOL_VERSION,
            command: command.into(),
            args,
        }
    }

    /// The request as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A reply, as sent on the wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn ok(result: Value) -> Self {
        Reply {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn err(msg: impl AsRef<str>) -> Self {
        Reply {
            ok: false,
            result: None,
            error: Some(one_line(msg.as_ref())),
        }
    }

    /// The reply as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"ok":false,"error":"internal error: reply not serialisable"}"#.into()
        });
        s.push('\n');
        s
    }
}

/// Makes a message fit on one line (errors are always one line).
pub fn one_line(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        if c == '\n' || c == '\r' {
            out.push_str("; ");
        } else if c.is_control() {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// Decodes one request line (with or without its trailing newline). Never panics; every problem
/// is a one-line message for the client.
pub fn decode_request(bytes: &[u8]) -> Result<Request, String> {
    if bytes.len() > MAX_REQUEST_BYTES + 2 {
        return Err(format!(
            "request too large ({} bytes, limit {MAX_REQUEST_BYTES})",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "request is not valid UTF-8".to_string())?;
    let text = text.trim();
    if text.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "request too large ({} bytes, limit {MAX_REQUEST_BYTES})",
            text.len()
        ));
    }
    if text.is_empty() {
        return Err("empty request".into());
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| one_line(&format!("request is not valid JSON: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err("request must be a JSON object with fields version, command, args".into());
    };
    match obj.get("version") {
        None => {
            return Err(format!(
                "request has no \"version\" field (this vswitchd speaks version {PROTOCOL_VERSION})"
            ));
        }
        Some(Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION as u64) => {}
        Some(v) => {
            return Err(format!(
                "unsupported protocol version {} (this vswitchd speaks version {PROTOCOL_VERSION})",
                truncate(&v.to_string(), 40)
            ));
        }
    }
    let req: Request =
        serde_json::from_value(value).map_err(|e| one_line(&format!("bad request: {e}")))?;
    if req.command.is_empty() {
        return Err("bad request: empty command".into());
    }
    Ok(req)
}

/// Cuts `s` to at most `max` characters (for echoing untrusted input in messages).
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Decodes a reply line received by the client.
pub fn decode_reply(bytes: &[u8]) -> Result<Reply, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "reply is not valid UTF-8".to_string())?;
    let reply: Reply = serde_json::from_str(text.trim())
        .map_err(|e| format!("malformed reply from vswitchd: {e}"))?;
    if !reply.ok && reply.error.is_none() {
        return Err("malformed reply from vswitchd: ok=false without an error".into());
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_good_request() {
        let r = decode_request(
            br#"{"version":1,"command":"add-port","args":["br0","p1","type=ring"]}"#,
        )
        .unwrap();
        assert_eq!(r.command, "add-port");
        assert_eq!(r.args, vec!["br0", "p1", "type=ring"]);
        let r = decode_request(b"{\"version\":1,\"command\":\"show\"}\r\n").unwrap();
        assert!(r.args.is_empty());
    }

    #[test]
    fn round_trip() {
        let r = Request::new(
            "add-flow",
            vec!["br0".into(), "priority=1,actions=drop".into()],
        );
        assert_eq!(decode_request(r.to_line().as_bytes()).unwrap(), r);
        let reply = Reply::err("a\nb");
        assert_eq!(reply.error.as_deref(), Some("a; b"));
        assert_eq!(decode_reply(reply.to_line().as_bytes()).unwrap(), reply);
        assert_eq!(
            Reply::ok(Value::Null).to_line(),
            "{\"ok\":true,\"result\":null}\n"
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\n".to_vec(),
            b"garbage".to_vec(),
            vec![0xff, 0xfe, 0x00],
            b"[1,2,3]".to_vec(),
            b"null".to_vec(),
            b"\"str\"".to_vec(),
            br#"{"command":"show"}"#.to_vec(),
            br#"{"version":2,"command":"show"}"#.to_vec(),
            br#"{"version":"1","command":"show"}"#.to_vec(),
            br#"{"version":-1,"command":"show"}"#.to_vec(),
            br#"{"version":1.5,"command":"show"}"#.to_vec(),
            br#"{"version":1}"#.to_vec(),
            br#"{"version":1,"command":5}"#.to_vec(),
            br#"{"version":1,"command":""}"#.to_vec(),
            br#"{"version":1,"command":"show","args":"br0"}"#.to_vec(),
            br#"{"version":1,"command":"show","args":[1,2]}"#.to_vec(),
            br#"{"version":1,"command":"show","extra":true}"#.to_vec(),
            br#"{"version":1,"command":"show""#.to_vec(),
            "[".repeat(100_000).into_bytes(),
            "[".repeat(60_000).into_bytes(),
            vec![b'x'; MAX_REQUEST_BYTES + 10],
        ];
        for c in cases {
            let e = decode_request(&c).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
            assert!(e.len() < 300, "{e}");
        }
        assert!(
            decode_request(br#"{"version":2,"command":"show"}"#)
                .unwrap_err()
                .contains("unsupported protocol version 2")
        );
        assert!(
            decode_request(&vec![b' '; MAX_REQUEST_BYTES + 10])
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn bad_replies() {
        assert!(decode_reply(b"nope").is_err());
        assert!(decode_reply(br#"{"ok":false}"#).is_err());
        assert!(decode_reply(br#"{"ok":true}"#).unwrap().ok);
    }
}
