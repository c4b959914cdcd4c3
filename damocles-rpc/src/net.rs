//! Small network facts a worker needs to describe itself.

use std::net::{IpAddr, ToSocketAddrs, UdpSocket};

/// The local address the OS would use to reach `host_port` (no packet is sent): the
/// original's default worker name, and the host part of its `Dest`.
pub fn local_ip_toward(host_port: &str) -> Option<IpAddr> {
    // A TLS manager's address names its scheme (`https://host:port`).
    let host_port = host_port.rsplit("://").next().unwrap_or(host_port);
    let target = host_port.to_socket_addrs().ok()?.next()?;
    let bind = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_reached_from_loopback() {
        for address in ["127.0.0.1:1789", "https://127.0.0.1:1789"] {
            let ip = super::local_ip_toward(address).expect("an address");
            assert!(ip.is_loopback(), "{ip}");
        }
    }
}
