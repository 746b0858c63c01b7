//! Sign-in limits and the forms' CSRF tokens.

use super::*;

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
