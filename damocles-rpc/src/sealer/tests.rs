//! The unit tests of `sealer`.

use super::{manager_host_port, InvalidManagerAddress};

#[test]
fn manager_addresses_in_every_form() {
    assert_eq!(
        manager_host_port("/ip4/127.0.0.1/tcp/1789"),
        Ok("127.0.0.1:1789".into())
    );
    assert_eq!(
        manager_host_port("/ip4/10.0.0.1/tcp/1789/http"),
        Ok("10.0.0.1:1789".into())
    );
    assert_eq!(
        manager_host_port("/dns/manager/tcp/80"),
        Ok("manager:80".into())
    );
    assert_eq!(
        manager_host_port("/ip6/::1/tcp/1789"),
        Ok("[::1]:1789".into())
    );
    assert_eq!(
        manager_host_port("http://127.0.0.1:1789/rpc/v0"),
        Ok("127.0.0.1:1789".into())
    );
    assert_eq!(
        manager_host_port("127.0.0.1:1789"),
        Ok("127.0.0.1:1789".into())
    );
    for bad in [
        "/ip4/127.0.0.1/udp/1789",
        "/ip4/127.0.0.1",
        "http://host",
        "",
        "host:x",
    ] {
        assert_eq!(
            manager_host_port(bad),
            Err(InvalidManagerAddress {
                addr: bad.to_owned(),
                reason: super::ADDRESS_FORMS.to_owned()
            }),
            "{bad}"
        );
    }
    for (tls, origin) in [
        ("https://127.0.0.1:1789", "https://127.0.0.1:1789"),
        ("https://m.example:1789/rpc/v0", "https://m.example:1789"),
        ("/ip4/127.0.0.1/tcp/1789/https", "https://127.0.0.1:1789"),
        ("/dns/m.example/tcp/1789/tls/http", "https://m.example:1789"),
    ] {
        assert_eq!(manager_host_port(tls), Ok(origin.into()), "{tls}");
    }
    for (refused, why) in [
        ("https://admin:s3cret@127.0.0.1:1789", "rpc_client.token"),
        ("http://admin:s3cret@127.0.0.1:1789", "rpc_client.token"),
        ("http://127.0.0.1:1789/other", "/rpc/v0"),
        ("http://127.0.0.1:1789/rpc/v0?token=s3cret", "query"),
    ] {
        let e = manager_host_port(refused).expect_err(refused);
        assert!(e.reason.contains(why), "{refused}: {e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    assert_eq!(
        super::without_secrets("http://admin:s3cret@127.0.0.1:1789/x?token=s3cret"),
        "http://admin:***@127.0.0.1:1789/x?***"
    );
    let twice = super::manager_host_ports("/ip4/127.0.0.1/tcp/1789, http://127.0.0.1:1789")
        .expect_err("one manager twice");
    assert!(twice.reason.contains("listed twice"), "{twice}");
    let error = super::HttpSectorManager::new("host:x", None, Default::default())
        .expect_err("a bad address");
    assert!(
        error
            .to_string()
            .starts_with("invalid manager address \"host:x\": expected a multiaddr"),
        "{error}"
    );
}
