//! `vswitchctl`: the command-line client of `vswitchd`. Sends one request over the management
//! socket and prints the result (text, or JSON with `--format json`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use ctl::client::Client;
use ctl::commands::COMMANDS;
use ctl::format::{json_pretty, render_text};
use ctl::protocol::Request;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

fn commands_help() -> String {
    let mut s = String::from("Commands:\n");
    for (_, usage) in COMMANDS {
        s.push_str("  ");
        s.push_str(usage);
        s.push('\n');
    }
    s.push_str("\nPort types (add-port BRIDGE PORT type=TYPE ...):\n");
    for t in [
        "type=ring [peer=PORT]                      in-memory patch port",
        "type=afxdp iface=IFNAME [xdp-mode=best-effort|native|generic] [queue=N] [n_rxq=N] [frames=N] [zero-copy=true|false]",
        "type=vhost-user path=SOCKET [mode=client|server] [queues=N] [mtu=N] [mac=MAC] [offloads=on|off]",
        "type=dpdk devargs=PCI|VDEV[,ARGS] [n_rxq=N] [n_txq=N] [rxd=N] [txd=N] [mtu=N] [mac=MAC]",
        "type=vxlan remote_ip=A.B.C.D [local_ip=A.B.C.D] [key=VNI|flow] [dst_port=N] [ttl=N]",
    ] {
        s.push_str("  ");
        s.push_str(t);
        s.push('\n');
    }
    s.push_str(
        "Any port also takes the settings of `set port` (VLAN, MAC limits, trust) and \
         vtep_ip=A.B.C.D/LEN [vtep_mac=MAC] to terminate VXLAN tunnels.\n\
         Rules use ovs-ofctl syntax (add-flow br0 \"priority=100,in_port=p1,tcp,tp_dst=80,actions=output:p2\").\n\
         See the README for each feature.",
    );
    s
}

#[derive(Parser, Debug)]
#[command(name = "vswitchctl", version, about = "Configure and inspect vswitchd", after_help = commands_help())]
struct Cli {
    /// vswitchd's management socket.
    #[arg(long, value_name = "PATH", default_value = ctl::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Command (see below).
    command: String,
    /// Command arguments (`--` between commands makes them one transaction).
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vswitchctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The request for the command line: several commands joined by `--` go as one `batch` (one
/// transaction), and `add-flows BRIDGE FILE` sends the file's rules (one per line; blank lines
/// and `#` comments skipped; `-` reads standard input).
fn request(cli: &Cli) -> Result<Request, String> {
    if cli.args.iter().any(|a| a == "--") {
        let mut args = vec![cli.command.clone()];
        args.extend(cli.args.iter().cloned());
        return Ok(Request::new("batch", args));
    }
    if cli.command == "add-flows" {
        let [bridge, file] = cli.args.as_slice() else {
            return Err("add-flows: usage: add-flows BRIDGE FILE".into());
        };
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            s
        } else {
            std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?
        };
        let mut args = vec![bridge.clone()];
        args.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        return Ok(Request::new("add-flows", args));
    }
    Ok(Request::new(cli.command.clone(), cli.args.clone()))
}

fn run(cli: &Cli) -> Result<String, String> {
    if cli.command == "capture" && !cli.args.iter().any(|a| a == "--") {
        return ctl::capture::run(&cli.socket, &ctl::capture::parse_args(&cli.args)?);
    }
    let req = request(cli)?;
    let result = Client::connect(&cli.socket)?.call(&req)?;
    Ok(match cli.format {
        Format::Json => json_pretty(&result),
        Format::Text => render_text(&cli.command, &result),
    })
}

#[cfg(test)]
mod tests {
    use super::commands_help;

    #[test]
    fn help_names_every_port_type_and_option() {
        let help = commands_help();
        for kind in ["ring", "afxdp", "vhost-user", "dpdk", "vxlan"] {
            assert!(help.contains(&format!("type={kind}")), "{kind}");
            for key in ctl::parse::port::type_keys(kind).unwrap() {
                assert!(help.contains(&format!("{key}=")), "{kind}: {key}");
            }
        }
    }
}
