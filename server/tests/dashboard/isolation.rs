//! A user of another project tries every dashboard URL and form of the
//! first project and gets nothing.

use super::*;

#[tokio::test]
async fn another_projects_user_can_neither_see_nor_touch_the_first_project() {
    let s = Server::start(Backend::Sqlite).await;
    let dev = dev_project(&s).await;
    // A room that ran and finished, for the history pages.
    loadtest(&s, "gone", 1, 0, "0", 2).await;
    settled(&s, 1).await;
    let (_, sessions) = send(s.dev(Method::GET, "/v1/usage/sessions")).await;
    let finished_sid = sessions["data"][0]["room_sid"].as_str().unwrap().to_owned();
    let session_sid = sessions["data"][0]["id"].as_str().unwrap().to_owned();
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
    let (other, other_key, other_secret) = s.create_project("other");
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
        format!("{base}/usage"),
        format!("{base}/usage?period=2026-01"),
        format!("{base}/usage/estimate"),
        format!("{base}/usage/days.csv"),
        format!("{base}/usage/sessions.csv?period=2026-01"),
        format!("{base}/finished-rooms/{finished_sid}"),
        format!("{base}/sessions/{session_sid}"),
        format!("{base}/sessions/{session_sid}/live"),
        format!("{base}/rooms/private/participants/live"),
    ] {
        let (st, body) = eve.get(&path).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !body.contains("private")
                && !body.contains("devkey")
                && !body.contains("watcher")
                && !body.contains("gone"),
            "{path} leaks: {body}"
        );
    }
    // Her own project's pages do not show the dev project's finished room either.
    let (st, body) = eve
        .get(&format!(
            "/dashboard/projects/{other}/finished-rooms/{finished_sid}"
        ))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(!body.contains("gone"), "{body}");
    let (_, body) = eve.get(&format!("/dashboard/projects/{other}/rooms")).await;
    assert!(!body.contains("gone"), "{body}");
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
        (
            format!("{base}/webhooks/{hook}"),
            vec![("url", "http://127.0.0.1:9/eve"), ("events", "*")],
        ),
    ] {
        let (st, _) = eve.post(&path, &fields).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}");
    }
    // Uploading a version of the dev project's function to its project's URL.
    let (st, _) = eve
        .upload(&format!("{base}/functions"), "watcher", logging_component())
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, versions) = send(s.dev(Method::GET, "/v1/functions/watcher/versions")).await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 1, "{versions}");
    let (_, keys) = send(s.dev(Method::GET, "/v1/api_keys")).await;
    assert!(!keys.to_string().contains("eve was here"), "{keys}");
    let (st, _) = send(s.dev(Method::GET, "/v1/rooms/private")).await;
    assert_eq!(st, StatusCode::OK, "the room is still there");
    let (st, _) = send(s.dev(Method::GET, &format!("/v1/recordings/{recording}"))).await;
    assert_eq!(st, StatusCode::OK, "the recording is still there");
    let (_, hooks) = send(s.dev(Method::GET, "/v1/webhooks")).await;
    assert_eq!(hooks["data"].as_array().unwrap().len(), 1, "{hooks}");
    assert_eq!(hooks["data"][0]["enabled"], true, "{hooks}");
    assert_eq!(
        hooks["data"][0]["url"], "http://127.0.0.1:9/hook",
        "{hooks}"
    );

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

    // Garbage uploads and periods: a page saying what is wrong, never a server error.
    let functions_path = format!("/dashboard/projects/{other}/functions");
    let (st, body) = eve
        .upload(&functions_path, "mine", b"not wasm at all".to_vec())
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("The component was refused"), "{body}");
    let (st, body) = eve
        .upload(&functions_path, "Bad Name", logging_component())
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("Function names are"), "{body}");
    let (st, _) = eve.upload(&functions_path, "mine", Vec::new()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "no file chosen");
    // A component over the API's usual 1 MiB body limit reaches the check (and is refused by it).
    let (st, body) = eve
        .upload(&functions_path, "mine", vec![0x42; 2 << 20])
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("The component was refused"), "{body}");
    // A forged token, or none before the file, is refused before the file is read.
    let forged = reqwest::multipart::Form::new()
        .text("csrf", "forged")
        .text("name", "forged")
        .text("events", "room.*")
        .part(
            "component",
            reqwest::multipart::Part::bytes(logging_component()),
        );
    let res = no_redirects()
        .post(format!("{}{functions_path}", s.base))
        .header("cookie", eve.cookie_header())
        .multipart(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let file_first = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(logging_component()),
        )
        .text("csrf", eve.csrf.clone())
        .text("name", "file-first")
        .text("events", "room.*");
    let res = no_redirects()
        .post(format!("{}{functions_path}", s.base))
        .header("cookie", eve.cookie_header())
        .multipart(file_first)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = no_redirects()
        .post(format!("{}{functions_path}", s.base))
        .header("cookie", eve.cookie_header())
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "a cut-off upload");
    let (st, body) = eve
        .upload(&functions_path, "mine", logging_component())
        .await;
    assert_eq!(st, StatusCode::SEE_OTHER, "{body}");
    let (st, other_functions) = send(
        s.request(Method::GET, "/v1/functions")
            .basic_auth(&other_key, Some(&other_secret)),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let names: Vec<&str> = other_functions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine"], "only the good upload is stored");
    for period in ["2026-13", "yesterday", "9999-01", "%00"] {
        let (st, body) = eve
            .get(&format!(
                "/dashboard/projects/{other}/usage?period={period}"
            ))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{period}: {body}");
    }
    let (st, _) = eve
        .get(&format!(
            "/dashboard/projects/{other}/finished-rooms/nonsense"
        ))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Signed out, the session no longer opens anything.
    let (st, _) = eve.post("/dashboard/logout", &[]).await;
    assert_eq!(st, StatusCode::SEE_OTHER);
    let (st, _) = eve.get(&format!("/dashboard/projects/{other}")).await;
    assert_eq!(st, StatusCode::SEE_OTHER, "back to sign in");
}
