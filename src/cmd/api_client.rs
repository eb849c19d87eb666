//! The control API of a running node from the command line (`capminer status`, `capminer
//! ctl`): one HTTP/1.1 request at the configuration's `api.listen`, its status code and body,
//! and the API's JSON errors turned into error messages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 request to the API; the status code and the body.
pub(super) fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&[u8]>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
        anyhow::anyhow!("api.listen = {addr}: cannot connect ({e}): is `capminer run` running with [api] enabled?")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some(t) = token {
        head.push_str(&format!(
            "Authorization: Bearer {}\r\n",
            String::from_utf8_lossy(t)
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (headers, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("api.listen = {addr}: not an HTTP response"))?;
    let code = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("api.listen = {addr}: no status line"))?;
    let chunked = headers
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    Ok((
        code,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    ))
}

/// The body of a chunked response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub(super) fn api_error(code: u16, body: &str) -> anyhow::Error {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string());
    anyhow::anyhow!("control API answered {code}: {message}")
}
