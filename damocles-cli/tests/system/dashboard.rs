//! The manager's dashboard in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against a real `damocles-manager mock` and a real worker on
//! 127.0.0.1. Needs Debian's `chromium` and `chromium-driver` (scripts/test.sh installs
//! them when missing). Screenshots of every page go to
//! `$CARGO_TARGET_TMPDIR/dashboard/` for review.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::{self, free_port, manager, util};

const ADMIN: &str = "dashboard-admin-token";
const READ: &str = "dashboard-read-token";

/// chromedriver, leading its own process group: dropped, the whole group is killed, the
/// Chromium it started included (a test that fails leaves no browser behind).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // `--`: the negative number is the group the driver leads (process_group(0)
        // below); without it kill(1) would read it as an option.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, logging into `log`.
fn start_driver(log: &Path) -> (Driver, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "chromedriver (Debian: apt-get install chromium chromium-driver; scripts/test.sh \
             installs them)",
        );
    let driver = Driver(child);
    common::wait_until(
        "chromedriver listening",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    );
    (driver, port)
}

async fn browser(driver_port: u16) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a Chromium session")
}

/// Waits (at most `limit`) until the text of the first element at `css` holds `wanted`;
/// on timeout says what it last read.
async fn wait_text(client: &Client, css: &str, wanted: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if text.contains(wanted) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {css:?} to show {wanted:?}; it shows {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn screenshot(client: &Client, dir: &Path, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save the screenshot");
}

/// Waits for the page to ask for a token, then enters `token`.
async fn log_in(client: &Client, token: &str) {
    wait_text(
        client,
        "#status",
        "needs the read or the admin token",
        Duration::from_secs(10),
    )
    .await;
    enter_token(client, token).await;
}

async fn enter_token(client: &Client, token: &str) {
    let input = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#token"))
        .await
        .expect("the token field");
    wait_visible(client, "#token-form").await;
    input.send_keys(token).await.expect("type the token");
    client
        .find(Locator::Css("#token-form button[type=submit]"))
        .await
        .expect("the token button")
        .click()
        .await
        .expect("submit the token");
}

async fn wait_visible(client: &Client, css: &str) {
    let script = format!("return !document.querySelector({css:?}).hidden;");
    wait_script(client, &script, &format!("{css} shown")).await;
}

/// Waits (at most 10 s) until `script` returns true in the page.
async fn wait_script(client: &Client, script: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.execute(script, vec![]).await.expect("script") != Value::Bool(true) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// `util worker info it-worker --json`, thread `index`'s state.
fn thread_state(listen: &str, index: usize) -> Value {
    let info = util(
        listen,
        &["--token", READ, "--json", "worker", "info", "it-worker"],
    );
    assert!(info.status.success(), "{}", common::text(&info));
    let threads: Value = serde_json::from_slice(&info.stdout).expect("json");
    threads[index]["thread_state"]["state"].clone()
}

/// A worker of two threads `it-worker` under `dir`, reporting to the manager at `listen`
/// with the admin token.
fn start_worker(dir: &Path, listen: &str) -> common::Process {
    let config = common::worker_config(dir, listen, 2, "");
    let text = std::fs::read_to_string(&config).expect("config");
    let with_token = text.replace(
        "[sector_manager]\n",
        &format!("[sector_manager]\nrpc_client.token = \"{ADMIN}\"\n"),
    );
    std::fs::write(&config, with_token).expect("config");
    common::worker(&config)
}

/// Opens the dashboard's `route` (`workers`, `worker/it-worker`) at `page`.
async fn open(client: &Client, page: &str, route: &str) {
    client
        .goto(&format!("{page}dashboard/#/{route}"))
        .await
        .unwrap_or_else(|e| panic!("open #/{route}: {e}"));
}

fn start_manager(home: &Path, listen: &str) -> common::Process {
    manager(
        home,
        listen,
        &[
            "--max-sectors",
            "0",
            "--admin-token",
            ADMIN,
            "--read-token",
            READ,
        ],
    )
}

#[test]
fn an_operator_sees_the_fleet_and_pauses_and_resumes_from_the_page() {
    let dir = tempfile::tempdir().expect("dir");
    let home = dir.path().join("manager");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut manager_process = Some(start_manager(&home, &listen));
    let _worker = start_worker(dir.path(), &listen);
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let (_driver, driver_port) = start_driver(&shots.join("chromedriver.log"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // A failed step must not hang the test: the runtime, whatever it still runs (the
    // WebDriver session's close), gets 5 s once the steps end.
    let steps = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let client = browser(driver_port).await;
            let page = format!("http://{listen}/");
            client.goto(&page).await.expect("open the dashboard");
            // Tokens are set: the page asks for one before it shows anything.
            log_in(&client, ADMIN).await;
            let live = wait_text(
                &client,
                "#view .figure.ok",
                "workers ok",
                Duration::from_secs(15),
            )
            .await;
            assert!(live.starts_with('1'), "one worker pings: {live}");
            screenshot(&client, &shots, "overview").await;

            open(&client, &page, "workers").await;
            wait_text(&client, "#view table", "it-worker", Duration::from_secs(10)).await;
            screenshot(&client, &shots, "workers").await;

            // Pause thread 1 from the page: the page and `util worker info` show it paused.
            open(&client, &page, "worker/it-worker").await;
            click(&client, "button[data-action=pause][data-index='1']").await;
            wait_text(
                &client,
                "#message",
                "thread #1 paused",
                Duration::from_secs(10),
            )
            .await;
            wait_text(
                &client,
                "#view tbody tr:nth-child(2)",
                "Paused",
                Duration::from_secs(3),
            )
            .await;
            assert_eq!(thread_state(&listen, 1), "Paused");

            // A resume at a state the thread cannot take is refused, with the worker's words.
            let select = "#state-it-worker-1";
            client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(select))
                .await
                .expect("the state select");
            client
                .execute(
                    &format!("document.querySelector({select:?}).value = 'PC1Done';"),
                    vec![],
                )
                .await
                .expect("choose PC1Done");
            click(&client, "button[data-action=resume][data-index='1']").await;
            let refusal = wait_text(
                &client,
                "#message.error",
                "holds no sector",
                Duration::from_secs(10),
            )
            .await;
            assert!(
                refusal.starts_with("error: worker 'it-worker' (")
                    && refusal.contains("cannot resume thread #1 at PC1Done"),
                "{refusal}"
            );
            assert_eq!(
                thread_state(&listen, 1),
                "Paused",
                "a refused resume changes nothing"
            );

            // A change made elsewhere shows without a reload, within the 1.5 s poll.
            let paused = util(
                &listen,
                &["--token", ADMIN, "worker", "pause", "it-worker", "0"],
            );
            assert!(paused.status.success(), "{}", common::text(&paused));
            wait_text(
                &client,
                "#view tbody tr:nth-child(1)",
                "Paused",
                Duration::from_secs(3),
            )
            .await;
            screenshot(&client, &shots, "worker").await;

            // Resume at the current state from the page.
            client
                .execute(
                    &format!("document.querySelector({select:?}).value = '';"),
                    vec![],
                )
                .await
                .expect("choose the current state");
            click(&client, "button[data-action=resume][data-index='1']").await;
            wait_text(
                &client,
                "#message",
                "thread #1 resumed",
                Duration::from_secs(10),
            )
            .await;
            wait_text(
                &client,
                "#view tbody tr:nth-child(2)",
                "Idle",
                Duration::from_secs(5),
            )
            .await;

            // The focus stays where the operator put it across the view's refreshes.
            let pause = "button[data-action=pause][data-index='1']";
            client
                .execute(&format!("document.querySelector({pause:?}).focus();"), vec![])
                .await
                .expect("focus");
            // The view's table is marked, then waited for to be replaced by a refresh.
            client
                .execute("document.querySelector('#view table').dataset.old = '1';", vec![])
                .await
                .expect("mark the view");
            wait_script(
                &client,
                "return document.querySelector('#view table[data-old]') === null;",
                "a refresh of the view",
            )
            .await;
            let focused = client
                .execute(
                    "const a = document.activeElement; return a.dataset.action + ':' + a.dataset.index;",
                    vec![],
                )
                .await
                .expect("the focused element");
            assert_eq!(focused, Value::String("pause:1".into()), "focus after a refresh");
            open(&client, &page, "events/it-worker/1").await;
            wait_text(&client, "#view table", "paused by", Duration::from_secs(10)).await;
            screenshot(&client, &shots, "events").await;
            for (route, name) in [
                ("sectors", "Sectors"),
                ("jobs", "Rebuild and unseal"),
                ("wdpost", "WindowPoSt jobs"),
            ] {
                open(&client, &page, route).await;
                wait_text(
                    &client,
                    "#view table caption",
                    name,
                    Duration::from_secs(10),
                )
                .await;
                screenshot(&client, &shots, route).await;
            }

            // A phone's width: the page still reads.
            client.set_window_size(390, 844).await.expect("phone size");
            open(&client, &page, "worker/it-worker").await;
            wait_text(&client, "#view", "it-worker at", Duration::from_secs(10)).await;
            screenshot(&client, &shots, "worker-phone").await;
            client
                .set_window_size(1280, 900)
                .await
                .expect("desktop size");

            // The read token sees the pages and no action.
            click(&client, "#token-toggle").await;
            click(&client, "#token-forget").await;
            log_in(&client, READ).await;
            wait_text(&client, "#view table", "Paused", Duration::from_secs(10)).await;
            let buttons = client
                .find_all(Locator::Css("#view button[data-action]"))
                .await
                .expect("buttons");
            assert!(
                buttons.is_empty(),
                "the read token sees {} action buttons",
                buttons.len()
            );
            screenshot(&client, &shots, "worker-read-token").await;

            // The manager restarts: the page says it cannot reach it, then goes on by itself.
            manager_process.take().expect("the manager").kill_9();
            wait_text(
                &client,
                "#status",
                "cannot be reached since",
                Duration::from_secs(10),
            )
            .await;
            manager_process = Some(start_manager(&home, &listen));
            wait_text(&client, "#status", "updated", Duration::from_secs(15)).await;
            wait_text(&client, "#view", "it-worker at", Duration::from_secs(10)).await;
            client.close().await.expect("close the session");
        })
    }));
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(manager_process);
    if let Err(panic) = steps {
        std::panic::resume_unwind(panic);
    }
}

/// One HTTP/1.1 request to `listen` (the connection closed after it): the status and the
/// body.
fn http(listen: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(listen).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, body.to_owned())
}

fn post(listen: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers.iter().any(|h| h.starts_with("Host:")) {
        request.push_str(&format!("Host: {listen}\r\n"));
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    http(listen, &request)
}

#[test]
fn cross_site_pages_rebound_names_and_the_read_token_cannot_act() {
    let dir = tempfile::tempdir().expect("dir");
    let listen = format!("127.0.0.1:{}", free_port());
    let _manager = start_manager(&dir.path().join("manager"), &listen);
    let _worker = start_worker(dir.path(), &listen);
    common::wait_until(
        "the worker registered",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let listed = util(&listen, &["--token", READ, "--json", "worker", "list"]);
            common::text(&listed).contains("it-worker").then_some(())
        },
    );
    let pause = r#"{"action":"pause","worker":"it-worker","index":1}"#;
    let admin = format!("Authorization: Bearer {ADMIN}");
    let own_origin = format!("Origin: http://{listen}");
    let read = format!("Authorization: Bearer {READ}");
    let cases = [
        (
            vec![admin.as_str(), "Origin: http://evil.example"],
            403,
            "may not call this manager",
        ),
        (
            vec![admin.as_str(), "Host: rebound.example:1789"],
            403,
            "--dashboard-host rebound.example",
        ),
        (
            vec![own_origin.as_str(), read.as_str()],
            403,
            "actions need the admin token",
        ),
        (
            vec![own_origin.as_str()],
            401,
            "actions need the admin token",
        ),
    ];
    for (headers, status, why) in cases {
        let (got, body) = post(&listen, "/dashboard/act", &headers, pause);
        assert_eq!(got, status, "{headers:?}: {body}");
        assert!(body.contains(why), "{headers:?}: {body}");
    }
    assert_eq!(thread_state(&listen, 1), "Idle", "nothing was paused");

    // The API itself refuses a cross-site page, and serves the relay to programs.
    let call =
        r#"{"jsonrpc":"2.0","id":1,"method":"Damocles.FleetPause","params":["it-worker",1]}"#;
    let (status, body) = post(
        &listen,
        "/rpc/v0",
        &[admin.as_str(), "Origin: http://evil.example"],
        call,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(thread_state(&listen, 1), "Idle", "nothing was paused");
    let (status, body) = post(&listen, "/rpc/v0", &[admin.as_str()], call);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""result":"paused""#), "{body}");
    assert_eq!(thread_state(&listen, 1), "Paused");
    let refused = r#"{"jsonrpc":"2.0","id":2,"method":"Damocles.FleetResume","params":["it-worker",1,"PC1Done"]}"#;
    let (_, body) = post(&listen, "/rpc/v0", &[admin.as_str()], refused);
    assert!(
        body.contains("worker 'it-worker' (") && body.contains("holds no sector"),
        "{body}"
    );
    let unknown =
        r#"{"jsonrpc":"2.0","id":3,"method":"Damocles.FleetThreads","params":["nobody"]}"#;
    let (_, body) = post(&listen, "/rpc/v0", &[admin.as_str()], unknown);
    assert!(body.contains("no worker named 'nobody'"), "{body}");
}
