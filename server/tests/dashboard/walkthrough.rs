//! An owner's walk through every page in headless Chromium, with axe-core
//! and a screenshot of each.

use super::*;

#[test]
fn an_owner_signs_in_creates_a_key_and_acts_on_a_live_room() {
    let axe = axe_source();
    isolated(
        "walkthrough::an_owner_signs_in_creates_a_key_and_acts_on_a_live_room",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            let project = dev_project(&s).await;
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

            // A function uploaded from its page, to watch the room's events.
            let wasm = s.dir().join("watcher.wasm");
            std::fs::write(&wasm, logging_component()).unwrap();
            click(c, Locator::LinkText("Functions")).await;
            find(c, Locator::Css("#function-name"))
                .await
                .send_keys("watcher")
                .await
                .unwrap();
            let events = find(c, Locator::Css("#function-events")).await;
            events.clear().await.unwrap();
            events.send_keys("room.*").await.unwrap();
            find(c, Locator::Css("#function-component"))
                .await
                .send_keys(wasm.to_str().unwrap())
                .await
                .unwrap();
            check_page(&b, &axe, "dashboard-functions").await;
            click(c, Locator::Css("#upload button[type=submit]")).await;
            eventually("the uploaded function's page", 10, || async {
                c.current_url()
                    .await
                    .unwrap()
                    .path()
                    .ends_with("/functions/watcher")
            })
            .await;
            let (_, function) = send(s.dev(Method::GET, "/v1/functions/watcher")).await;
            assert_eq!(function["active_version"], 1, "{function}");

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

            // The overview counts the live participants' minutes so far.
            let overview = format!("{}/dashboard/projects/{project}", s.base);
            eventually("today's minutes to count the live room", 15, || async {
                c.goto(&overview).await.unwrap();
                let cards = c.find_all(Locator::Css(".card .value")).await.unwrap();
                let today = cards[2].text().await.unwrap();
                today != "0.0"
            })
            .await;
            click(c, Locator::LinkText("Rooms")).await;

            // Its page lists the participants with their connections, measured
            // live; one is removed and is gone.
            click(c, Locator::LinkText("busy")).await;
            let identities: Vec<String> = serde_json::from_value(
                b.run(
                    "return [...document.querySelectorAll('tr[data-identity]')].map(r => r.dataset.identity);",
                    vec![],
                )
                .await,
            )
            .unwrap();
            assert_eq!(identities.len(), 3, "{identities:?}");
            let deadline = Instant::now() + Duration::from_secs(15);
            let connections: Vec<String> = loop {
                let cells = b
                    .run(
                        "return [...document.querySelectorAll('td.connection')].map(td => td.textContent);",
                        vec![],
                    )
                    .await;
                let cells: Vec<String> = serde_json::from_value(cells).unwrap();
                if cells.len() == 3
                    && cells.iter().all(|t| t.contains("% loss"))
                    && cells.iter().any(|t| !t.contains("sends 0 bps"))
                {
                    break cells;
                }
                assert!(
                    Instant::now() < deadline,
                    "connections not measured: {cells:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(
                connections.iter().all(|t| ["excellent", "good", "poor"]
                    .iter()
                    .any(|q| t.starts_with(q))),
                "{connections:?}"
            );
            // The API has the same measures: both publishers send their 300 kbps.
            eventually("both publishers' bitrates in the API", 15, || async {
                let (_, listed) = send(s.dev(Method::GET, "/v1/rooms/busy/participants")).await;
                let sending = listed["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["connection"]["publish_bps"].as_u64().unwrap_or(0) > 100_000)
                    .count();
                sending == 2
            })
            .await;
            check_page(&b, &axe, "dashboard-room").await;
            let victim = identities[0].clone();
            // Clicked from a script, so a live refresh of the rows cannot come in between.
            b.run(
                &format!(
                    "document.querySelector(\"tr[data-identity='{victim}'] button.danger\").click(); return true;"
                ),
                vec![],
            )
            .await;
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

            // The room is in the history with its sessions, once they are metered.
            let rooms_page = format!("{}/dashboard/projects/{project}/rooms", s.base);
            eventually("the finished room to be listed", 20, || async {
                c.goto(&rooms_page).await.unwrap();
                !c.find_all(Locator::Css("#finished-rooms a"))
                    .await
                    .unwrap()
                    .is_empty()
            })
            .await;
            check_page(&b, &axe, "dashboard-rooms-finished").await;
            click(c, Locator::Css("#finished-rooms a")).await;
            let sessions = find(c, Locator::Css("#sessions")).await;
            let rows = sessions.find_all(Locator::Css("tr.session")).await.unwrap();
            assert!(rows.len() >= 3, "{} sessions", rows.len());
            // Who was there when: a bar per session on one time axis.
            let bars = c
                .find_all(Locator::Css("#timeline rect.bar"))
                .await
                .unwrap();
            assert_eq!(bars.len(), rows.len(), "one timeline bar per session");
            let text = sessions.text().await.unwrap();
            assert!(!text.contains("still in"), "{text}");
            assert!(text.contains(&victim), "{text}");
            // Everyone was on this one node, in the default region.
            let nodes = find(c, Locator::Css("#by-node tbody"))
                .await
                .text()
                .await
                .unwrap();
            assert!(nodes.contains("local"), "{nodes}");
            assert_eq!(
                c.find_all(Locator::Css("#by-node tbody tr"))
                    .await
                    .unwrap()
                    .len(),
                1,
                "{nodes}"
            );
            check_page(&b, &axe, "dashboard-finished-room").await;
            // A session's call page: its connection over time, or why there is none.
            click(c, Locator::Css("#sessions tr.session a")).await;
            find(c, Locator::Css("#bitrate, #no-samples")).await;
            check_page(&b, &axe, "dashboard-call").await;
            c.back().await.unwrap();

            // Usage and billing: today's participant-minutes, the invoice as the API has it.
            click(c, Locator::LinkText("Usage")).await;
            let today: Vec<String> = serde_json::from_value(
                b.run(
                    "return [...document.querySelectorAll('#usage-days tbody tr:first-child > *')].map(td => td.textContent);",
                    vec![],
                )
                .await,
            )
            .unwrap();
            assert_eq!(
                today[0],
                chrono::Utc::now().format("%Y-%m-%d").to_string(),
                "{today:?}"
            );
            assert!(
                today[1] != "0.0 min" || today[2] != "0.0 min",
                "participant-minutes today: {today:?}"
            );
            let (_, preview) = send(s.dev(Method::GET, "/v1/billing/preview")).await;
            let cents = preview["invoice"]["total_cents"].as_i64().unwrap();
            let total = find(c, Locator::Css("#invoice-total"))
                .await
                .text()
                .await
                .unwrap();
            assert_eq!(total, format!("{}.{:02} USD", cents / 100, cents % 100));
            let stripe = find(c, Locator::Css("#stripe-state"))
                .await
                .text()
                .await
                .unwrap();
            assert!(stripe.contains("does not bill through Stripe"), "{stripe}");
            let nodes = find(c, Locator::Css("#by-node tbody"))
                .await
                .text()
                .await
                .unwrap();
            assert!(
                nodes.contains("local"),
                "where people connected from: {nodes}"
            );
            check_page(&b, &axe, "dashboard-usage").await;

            // The cost estimator: a month of calls priced on the plan and
            // counted in the units other platforms bill by.
            click(
                c,
                Locator::LinkText("Estimate what a month of calls would cost"),
            )
            .await;
            let people = find(c, Locator::Id("participants")).await;
            people.clear().await.unwrap();
            people.send_keys("8").await.unwrap();
            click(c, Locator::Css("#estimate button[type=submit]")).await;
            eventually("the estimate for a call of eight", 10, || async {
                c.source()
                    .await
                    .unwrap()
                    .contains("8 people make 56 subscriptions")
            })
            .await;
            let units = find(c, Locator::Css("#other-units"))
                .await
                .text()
                .await
                .unwrap();
            assert!(units.contains("Subscribed track-minutes"), "{units}");
            check_page(&b, &axe, "dashboard-estimate").await;

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
            // The retry answers with the page it was sent from, so the URL alone
            // cannot tell the new page from the old one: wait for the old one to go.
            let before = find(c, Locator::Css("html")).await;
            retry.click().await.unwrap();
            eventually("the endpoint's page after a retry", 10, || async {
                before.tag_name().await.is_err()
                    && c.current_url().await.unwrap().as_str() == hook_page
            })
            .await;

            // The endpoint edited: a bad URL is refused with what was typed kept, a good edit saved.
            let errors = b.console_errors().await;
            assert!(errors.is_empty(), "console errors: {errors:?}");
            let url = find(c, Locator::Css("#url")).await;
            url.clear().await.unwrap();
            url.send_keys("not a url").await.unwrap();
            click(c, Locator::Css("#edit button[type=submit]")).await;
            find(c, Locator::Css("[role=alert]")).await;
            let kept = find(c, Locator::Css("#url"))
                .await
                .prop("value")
                .await
                .unwrap();
            assert_eq!(kept.as_deref(), Some("not a url"));
            let kept_events = find(c, Locator::Css("#events"))
                .await
                .prop("value")
                .await
                .unwrap();
            assert_eq!(kept_events.as_deref(), Some("room.*"));
            // The 400 of that answer is the only thing the console has to say.
            let errors = b.console_errors().await;
            assert!(
                errors.iter().all(|e| e.contains("400")),
                "console errors: {errors:?}"
            );
            let url = find(c, Locator::Css("#url")).await;
            url.clear().await.unwrap();
            url.send_keys("http://127.0.0.1:9/edited").await.unwrap();
            let events = find(c, Locator::Css("#events")).await;
            events.clear().await.unwrap();
            events.send_keys("room.finished").await.unwrap();
            click(c, Locator::Css("#edit button[type=submit]")).await;
            eventually("the edit to be saved", 10, || async {
                let (_, hooks) = send(s.dev(Method::GET, "/v1/webhooks")).await;
                hooks["data"][0]["url"] == "http://127.0.0.1:9/edited"
                    && hooks["data"][0]["events"] == serde_json::json!(["room.finished"])
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
