//! The one integration-test binary: drives `chatload::...` in-process against the reference
//! server on port 0, plus a few runs of the real binary for exit codes and output.

mod adaptive;
mod artillery;
mod check;
mod cli;
mod common;
mod faults;
mod files;
mod fuzz_corpus;
mod hostile;
mod http;
mod http_demo;
mod http_settings;
mod limits;
mod live;
mod measures;
mod monitor;
mod mqtt;
mod overrun;
mod plan_lang;
mod probe;
mod redaction;
mod report;
mod result;
mod retire;
mod run;
mod server;
mod shards;
mod signals;
mod transport;
mod verdicts;

/// A loopback port that refuses connections and stays ours for as long as the socket lives:
/// bound without listening, so no other test's listener can be given that number while a
/// test aims connections at it (binding and dropping a listener would free it for anyone).
pub(crate) fn refusing_port() -> (tokio::net::TcpSocket, std::net::SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let addr = socket.local_addr().expect("address");
    (socket, addr)
}
