//! The client side of the management protocol: one connection, one request at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::protocol::{Request, decode_reply};

/// Largest reply accepted.
const MAX_REPLY_BYTES: u64 = 256 << 20;

pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Client, String> {
        let stream = UnixStream::connect(socket).map_err(|e| {
            format!(
                "cannot connect to {}: {e} (is vswitchd running?)",
                socket.display()
            )
        })?;
        let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
        let reader = BufReader::new(
            stream
                .try_clone()
                .map_err(|e| format!("cannot use the connection: {e}"))?,
        );
        Ok(Client { stream, reader })
    }

    /// Sends `req`; its result, or the daemon's error.
    pub fn call(&mut self, req: &Request) -> Result<Value, String> {
        self.stream
            .write_all(req.to_line().as_bytes())
            .map_err(|e| format!("cannot send request to vswitchd: {e}"))?;
        let mut line = Vec::new();
        (&mut self.reader)
            .take(MAX_REPLY_BYTES)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read reply from vswitchd: {e}"))?;
        if line.is_empty() {
            return Err("vswitchd closed the connection without replying".into());
        }
        let reply = decode_reply(&line)?;
        if !reply.ok {
            return Err(reply.error.unwrap_or_default());
        }
        Ok(reply.result.unwrap_or(Value::Null))
    }
}
