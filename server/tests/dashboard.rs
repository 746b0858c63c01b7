//! The dashboard end to end: an owner signs in with headless Chromium,
//! creates an API key, watches a room appear while the load tester runs in
//! it and removes a participant, with a screenshot of each page under
//! `target/screenshots/` and no console error; and a user of another project
//! tries every dashboard URL and form of the first project and gets nothing.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::browser::{isolated, Driver};
use common::metering::loadtest_command;
use common::{logging_component, send, Server};
use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use switchboard_store::Backend;

const DEV_EMAIL: &str = "dev@switchboard.local";
const DEV_PASSWORD: &str = "switchboard-dev";

/// The dev project's id.
async fn dev_project(s: &Server) -> String {
    let (_, p) = send(s.dev(Method::GET, "/v1/project")).await;
    p["id"].as_str().unwrap().to_owned()
}

/// axe-core's source, installed with npm on first use (before the test enters
/// its network namespace, where the registry is out of reach).
fn axe_source() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/a11y");
    let file = dir.join("node_modules/axe-core/axe.min.js");
    if !file.exists() {
        let st = std::process::Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm (Node.js) to install axe-core");
        assert!(st.success(), "npm ci failed in {}", dir.display());
    }
    std::fs::read_to_string(&file).expect("axe-core's axe.min.js")
}

/// Checks the page with axe-core against WCAG 2 A and AA (labels, contrast,
/// names, landmarks...) and saves its screenshot as `NAME.png`.
async fn check_page(b: &common::browser::Browser, axe: &str, name: &str) {
    let script = format!(
        "{axe}\nconst r = await axe.run(document, {{ runOnly: ['wcag2a', 'wcag2aa'] }});\n\
         return r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '));"
    );
    let violations = b.run(&script, vec![]).await;
    assert_eq!(
        violations.as_array().map(Vec::len),
        Some(0),
        "{name} is not accessible: {violations:#}"
    );
    b.screenshot(name).await;
}

/// The element `locator` finds, waiting up to 10 s for it (pages load after clicks).
async fn find(c: &fantoccini::Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("no {locator:?} on the page: {e}"))
}

/// Clicks what `locator` finds, once it is there.
async fn click(c: &fantoccini::Client, locator: Locator<'_>) {
    find(c, locator).await.click().await.unwrap();
}

/// Deploys the function `watcher`, which logs each `room.*` event it sees.
async fn deploy_watcher(s: &Server) {
    let (st, body) = send(
        s.dev(Method::POST, "/v1/functions/watcher/versions?events=room.*")
            .header("content-type", "application/wasm")
            .body(logging_component()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// Polls `check` every 200 ms for up to `secs` seconds.
async fn eventually<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn an_owner_signs_in_creates_a_key_and_acts_on_a_live_room() {
    let axe = axe_source();
    isolated(
        "an_owner_signs_in_creates_a_key_and_acts_on_a_live_room",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            let project = dev_project(&s).await;
            deploy_watcher(&s).await;
            let driver = Driver::start().await;
            let b = driver.browser().await;
            let c = &b.client;

            // Signed out, the dashboard sends you to sign in; a wrong password is refused.
            c.goto(&format!("{}/dashboard", s.base)).await.unwrap();
            assert!(c
                .current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/dashboard/login"));
            check_page(&b, &axe, "dashboard-sign-in").await;
            let sign_in = |password: &'static str| async move {
                let email = find(c, Locator::Css("#email")).await;
                email.clear().await.unwrap();
                email.send_keys(DEV_EMAIL).await.unwrap();
                find(c, Locator::Css("#password"))
                    .await
                    .send_keys(password)
                    .await
                    .unwrap();
                click(c, Locator::Css("form button[type=submit]")).await;
            };
            sign_in("not the password").await;
            let alert = find(c, Locator::Css("[role=alert]"))
                .await
                .text()
                .await
                .unwrap();
            assert_eq!(alert, "Wrong email or password.");
            // The 401 of that answer is the only thing the console has to say.
            let errors = b.console_errors().await;
            assert!(
                errors.iter().all(|e| e.contains("401")),
                "console errors: {errors:?}"
            );
            sign_in(DEV_PASSWORD).await;
            eventually("the overview after signing in", 10, || async {
                c.current_url().await.unwrap().path() != "/dashboard/login"
            })
            .await;
            let url = c.current_url().await.unwrap();
            assert_eq!(url.path(), format!("/dashboard/projects/{project}"));
            let h1 = find(c, Locator::Css("h1")).await.text().await.unwrap();
            assert_eq!(h1, "Overview");
            check_page(&b, &axe, "dashboard-overview").await;

            // An API key: created, its secret shown once, and it works.
            click(c, Locator::LinkText("API keys")).await;
            find(c, Locator::Css("#description"))
                .await
                .send_keys("from the dashboard")
                .await
                .unwrap();
            click(c, Locator::Css("main form button[type=submit]")).await;
            let secret = find(c, Locator::Css("#new-secret"))
                .await
                .text()
                .await
                .unwrap();
            let key_id = find(c, Locator::Css(".notice code"))
                .await
                .text()
                .await
                .unwrap();
            check_page(&b, &axe, "dashboard-keys").await;
            let res = s
                .http
                .get(format!("{}/v1/project", s.base))
                .basic_auth(&key_id, Some(&secret))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "the new key works");
            c.goto(&format!("{}/dashboard/projects/{project}/keys", s.base))
                .await
                .unwrap();
            let page = c.source().await.unwrap();
            assert!(!page.contains(&secret), "the secret is shown only once");
            assert!(page.contains(&key_id));

            // The rooms page is open when the load tester starts: the room appears without a reload.
            click(c, Locator::LinkText("Rooms")).await;
            let mut load = loadtest_command(&s, "busy", 2, 1, "300000", 30)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            eventually("the room to appear live", 15, || async {
                c.find_all(Locator::Css("#live-rooms a"))
                    .await
                    .unwrap()
                    .len()
                    == 1
            })
            .await;
            eventually("its three participants", 15, || async {
                let cells = c.find_all(Locator::Css("#live-rooms td")).await.unwrap();
                match cells.get(1) {
                    Some(count) => count.text().await.unwrap_or_default() == "3",
                    None => false,
                }
            })
            .await;
            check_page(&b, &axe, "dashboard-rooms").await;
            let (st, rec) = send(
                s.dev(Method::POST, "/v1/rooms/busy/recordings")
                    .json(&serde_json::json!({ "mode": "tracks" })),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED, "{rec}");
            let recording = rec["id"].as_str().unwrap().to_owned();
            tokio::time::sleep(Duration::from_secs(2)).await;

            // Its page lists the participants; one is removed and is gone.
            click(c, Locator::LinkText("busy")).await;
            let rows = c.find_all(Locator::Css("tr[data-identity]")).await.unwrap();
            assert_eq!(rows.len(), 3);
            let victim = rows[0].attr("data-identity").await.unwrap().unwrap();
            check_page(&b, &axe, "dashboard-room").await;
            rows[0]
                .find(Locator::Css("button.danger"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let gone = format!("tr[data-identity='{victim}']");
            let room_page = format!("{}/dashboard/projects/{project}/rooms/busy", s.base);
            eventually(
                "the participant to be gone from the room page",
                10,
                || async {
                    if c.find_all(Locator::Css(&gone)).await.unwrap().is_empty() {
                        return true;
                    }
                    c.goto(&room_page).await.unwrap();
                    false
                },
            )
            .await;
            let (_, list) = send(s.dev(Method::GET, "/v1/rooms/busy/participants")).await;
            let left: Vec<&str> = list["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["identity"].as_str().unwrap())
                .collect();
            assert!(
                !left.contains(&victim.as_str()),
                "{victim} is still in {left:?}"
            );

            // Ending the room closes it for everyone.
            click(c, Locator::Css("form[action$='/end'] button")).await;
            eventually("the rooms list after ending the room", 10, || async {
                c.current_url().await.unwrap().path().ends_with("/rooms")
            })
            .await;
            let (st, _) = send(s.dev(Method::GET, "/v1/rooms/busy")).await;
            assert_eq!(st, StatusCode::NOT_FOUND);
            let _ = load.kill();
            let _ = load.wait();

            // The recording ended with the room: its page lists its files, which download.
            click(c, Locator::LinkText("Recordings")).await;
            let recording_page = format!(
                "{}/dashboard/projects/{project}/recordings/{recording}",
                s.base
            );
            eventually("the recording to end", 30, || async {
                c.goto(&recording_page).await.unwrap();
                let page = c.source().await.unwrap();
                page.contains("finished") || page.contains("failed")
            })
            .await;
            let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{recording}"))).await;
            assert_eq!(rec["status"], "finished", "{rec}");
            let sizes: Vec<u64> = rec["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["size_bytes"].as_u64().unwrap())
                .collect();
            let fetched = b
                .run(
                    "const sizes = [];\n\
                     for (const a of document.querySelectorAll('a[download]')) {\n\
                       const r = await fetch(a.href);\n\
                       if (!r.ok) throw new Error(a.href + ' answered ' + r.status);\n\
                       sizes.push((await r.arrayBuffer()).byteLength);\n\
                     }\n\
                     return sizes;",
                    vec![],
                )
                .await;
            let fetched: Vec<u64> = serde_json::from_value(fetched).unwrap();
            assert_eq!(fetched, sizes, "the files download whole");
            check_page(&b, &axe, "dashboard-recording").await;
            let delete = c
                .find(Locator::Css("form[action$='/delete'] button"))
                .await
                .unwrap();
            delete.click().await.unwrap();
            eventually("the recording to be deleted", 10, || async {
                let (st, _) =
                    send(s.dev(Method::GET, &format!("/v1/recordings/{recording}"))).await;
                st == StatusCode::NOT_FOUND
            })
            .await;

            // The function saw the room start and end: its invocations show what it logged.
            click(c, Locator::LinkText("Functions")).await;
            click(c, Locator::LinkText("watcher")).await;
            let function_page =
                format!("{}/dashboard/projects/{project}/functions/watcher", s.base);
            eventually("the function's invocations", 15, || async {
                if c.source().await.unwrap().contains("saw an event") {
                    return true;
                }
                c.goto(&function_page).await.unwrap();
                false
            })
            .await;
            let outcome = c
                .find(Locator::Css("tr.invocation td:nth-child(4)"))
                .await
                .unwrap();
            assert_eq!(outcome.text().await.unwrap(), "ok");
            check_page(&b, &axe, "dashboard-function").await;

            // A webhook endpoint (to a port nobody listens on), the room's events
            // replayed to it, their failed deliveries listed, one retried.
            click(c, Locator::LinkText("Webhooks")).await;
            let url = find(c, Locator::Css("#url")).await;
            url.send_keys("http://127.0.0.1:9/hook").await.unwrap();
            let events = c.find(Locator::Css("#events")).await.unwrap();
            events.clear().await.unwrap();
            events.send_keys("room.*").await.unwrap();
            c.find(Locator::Css("main form button[type=submit]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let secret = find(c, Locator::Css("#new-secret")).await;
            assert!(secret.text().await.unwrap().starts_with("whsec_"));
            click(c, Locator::LinkText("http://127.0.0.1:9/hook")).await;
            let since = find(c, Locator::Css("#since")).await;
            let hour_ago =
                (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M");
            since.send_keys(&hour_ago.to_string()).await.unwrap();
            c.find(Locator::Css("form[action$='/replay'] button"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let hook_page = c.current_url().await.unwrap().to_string();
            eventually("failed attempts to be listed", 30, || async {
                let listed = c.find_all(Locator::Css("tr.delivery")).await.unwrap();
                let page = c.source().await.unwrap();
                if listed.len() >= 2 && page.contains("no answer") {
                    return true;
                }
                c.goto(&hook_page).await.unwrap();
                false
            })
            .await;
            check_page(&b, &axe, "dashboard-webhook").await;
            let retry = c
                .find(Locator::Css("form[action$='/retry'] button"))
                .await
                .unwrap();
            retry.click().await.unwrap();
            eventually("the endpoint's page after a retry", 10, || async {
                c.current_url().await.unwrap().as_str() == hook_page
            })
            .await;

            let errors = b.console_errors().await;
            assert!(errors.is_empty(), "console errors: {errors:?}");

            // Signing out ends the session.
            click(c, Locator::Css("form.signout button")).await;
            eventually("the sign-in page after signing out", 10, || async {
                c.current_url()
                    .await
                    .unwrap()
                    .path()
                    .ends_with("/dashboard/login")
            })
            .await;
            c.goto(&format!("{}/dashboard/projects/{project}", s.base))
                .await
                .unwrap();
            assert!(c
                .current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/dashboard/login"));
            b.close().await;
        },
    );
}

/// A browser without a browser: cookies kept by hand, forms posted with the CSRF token.
struct Session<'a> {
    s: &'a Server,
    cookies: HashMap<String, String>,
    csrf: String,
}

impl<'a> Session<'a> {
    fn new(s: &'a Server) -> Self {
        Self {
            s,
            cookies: HashMap::new(),
            csrf: String::new(),
        }
    }

    fn keep(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            assert!(
                v.contains("HttpOnly") && v.contains("SameSite=Strict"),
                "{v}"
            );
            if val.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GETs `path` (no redirects followed); returns the status and the body.
    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let res = no_redirects()
            .get(format!("{}{path}", self.s.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&res);
        let status = res.status();
        let body = res.text().await.unwrap();
        if let Some(token) = hidden_csrf(&body) {
            self.csrf = token;
        }
        (status, body)
    }

    /// POSTs a form (the CSRF token added unless `fields` has one).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf".into(), self.csrf.clone()));
        }
        let res = no_redirects()
            .post(format!("{}{path}", self.s.base))
            .header("cookie", self.cookie_header())
            .form(&form)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> StatusCode {
        self.get("/dashboard/login").await;
        self.post(
            "/dashboard/login",
            &[("email", email), ("password", password)],
        )
        .await
        .0
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden_csrf(body: &str) -> Option<String> {
    let at = body.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    Some(body[at..].split('"').next()?.to_owned())
}

#[tokio::test]
async fn another_projects_user_can_neither_see_nor_touch_the_first_project() {
    let s = Server::start(Backend::Sqlite).await;
    let dev = dev_project(&s).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&serde_json::json!({ "name": "private" })),
    )
    .await;
    deploy_watcher(&s).await;
    let (st, rec) = send(
        s.dev(Method::POST, "/v1/rooms/private/recordings")
            .json(&serde_json::json!({ "mode": "tracks" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{rec}");
    let recording = rec["id"].as_str().unwrap().to_owned();
    let (st, hook) = send(
        s.dev(Method::POST, "/v1/webhooks")
            .json(&serde_json::json!({
                "url": "http://127.0.0.1:9/hook",
                "events": ["room.*"],
            })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{hook}");
    let hook = hook["id"].as_str().unwrap().to_owned();
    let (other, _, _) = s.create_project("other");
    let mut cmd = s.command();
    cmd.args([
        "user",
        "create",
        "Eve@Example.com",
        "--project",
        &other,
        "--password-stdin",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "eve's long password").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut eve = Session::new(&s);
    assert_eq!(
        eve.sign_in("eve@example.com", "eve's long password").await,
        StatusCode::SEE_OTHER
    );
    // Her own project is hers.
    let (st, _) = eve.get("/dashboard").await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, body) = eve.get(&format!("/dashboard/projects/{other}")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(body.contains("other"));

    // Every page and form of the dev project: not found, and nothing changes.
    let base = format!("/dashboard/projects/{dev}");
    for path in [
        base.clone(),
        format!("{base}/keys"),
        format!("{base}/rooms"),
        format!("{base}/rooms/live"),
        format!("{base}/rooms/private"),
        format!("{base}/functions"),
        format!("{base}/functions/watcher"),
        format!("{base}/recordings"),
        format!("{base}/recordings/{recording}"),
        format!("{base}/recordings/{recording}/files/manifest.json"),
        format!("{base}/webhooks"),
        format!("{base}/webhooks/{hook}"),
    ] {
        let (st, body) = eve.get(&path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !body.contains("private") && !body.contains("devkey") && !body.contains("watcher"),
            "{path} leaks: {body}"
        );
    }
    let track = "TR_00000000000000000000000000";
    for (path, fields) in [
        (
            format!("{base}/keys"),
            vec![("description", "eve was here")],
        ),
        (format!("{base}/keys/devkey/revoke"), vec![]),
        (format!("{base}/rooms/private/end"), vec![]),
        (
            format!("{base}/rooms/private/participants/someone/remove"),
            vec![],
        ),
        (
            format!("{base}/rooms/private/participants/someone/tracks/{track}/mute"),
            vec![("muted", "true")],
        ),
        (
            format!("{base}/functions/watcher/activate"),
            vec![("version", "1")],
        ),
        (format!("{base}/recordings/{recording}/delete"), vec![]),
        (
            format!("{base}/webhooks"),
            vec![("url", "http://127.0.0.1:9/eve"), ("events", "*")],
        ),
        (
            format!("{base}/webhooks/{hook}/enabled"),
            vec![("enabled", "false")],
        ),
        (
            format!("{base}/webhooks/{hook}/replay"),
            vec![("since", "2020-01-01 00:00")],
        ),
        (
            format!("{base}/webhooks/{hook}/deliveries/whd_00000000000000000000000000/retry"),
            vec![],
        ),
    ] {
        let (st, _) = eve.post(&path, &fields).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, keys) = send(s.dev(Method::GET, "/v1/api_keys")).await;
    assert!(!keys.to_string().contains("eve was here"), "{keys}");
    let (st, _) = send(s.dev(Method::GET, "/v1/rooms/private")).await;
    assert_eq!(st, StatusCode::OK, "the room is still there");
    let (st, _) = send(s.dev(Method::GET, &format!("/v1/recordings/{recording}"))).await;
    assert_eq!(st, StatusCode::OK, "the recording is still there");
    let (_, hooks) = send(s.dev(Method::GET, "/v1/webhooks")).await;
    assert_eq!(hooks["data"].as_array().unwrap().len(), 1, "{hooks}");
    assert_eq!(hooks["data"][0]["enabled"], true, "{hooks}");

    // Garbage in paths and forms: clear refusals, never a server error.
    for path in [
        "/dashboard/projects/nonsense",
        "/dashboard/projects/%00",
        "/dashboard/projects/prj_x/keys",
    ] {
        let (st, _) = eve.get(path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    let keys_path = format!("/dashboard/projects/{other}/keys");
    let (st, _) = eve.post(&keys_path, &[("csrf", "forged")]).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "a forged CSRF token");
    let (st, _) = eve
        .post(&keys_path, &[("description", &"x".repeat(201))])
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "too long a description is refused on the page"
    );
    let res = no_redirects()
        .post(format!("{}{keys_path}", s.base))
        .header("cookie", eve.cookie_header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("%%%&&&=")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());

    // Signed out, the session no longer opens anything.
    let (st, _) = eve.post("/dashboard/logout", &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, _) = eve.get(&format!("/dashboard/projects/{other}")).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "back to sign in");
}

#[tokio::test]
async fn sign_ins_are_limited_and_forms_need_their_token() {
    let s = Server::start(Backend::Sqlite).await;
    // The sign-in form's own CSRF token is required.
    let mut anon = Session::new(&s);
    anon.get("/dashboard/login").await;
    let (st, _) = anon
        .post(
            "/dashboard/login",
            &[
                ("email", DEV_EMAIL),
                ("password", DEV_PASSWORD),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Five wrong passwords, then even the right one waits.
    let mut mallory = Session::new(&s);
    for _ in 0..5 {
        assert_eq!(
            mallory.sign_in(DEV_EMAIL, "wrong password").await,
            StatusCode::UNAUTHORIZED
        );
    }
    let (st, body) = {
        mallory.get("/dashboard/login").await;
        mallory
            .post(
                "/dashboard/login",
                &[("email", DEV_EMAIL), ("password", DEV_PASSWORD)],
            )
            .await
    };
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.contains("Try again in"), "{body}");
    // An unknown address is refused like a wrong password.
    let mut nobody = Session::new(&s);
    let (st, _) = {
        nobody.get("/dashboard/login").await;
        nobody
            .post(
                "/dashboard/login",
                &[("email", "nobody@x"), ("password", "whatever it is")],
            )
            .await
    };
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "the client's address is limited too"
    );

    // Pages send the security headers.
    let res = reqwest::get(format!("{}/dashboard/login", s.base))
        .await
        .unwrap();
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
}
