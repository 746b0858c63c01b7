//! The dashboard without a browser: a signed-in session whose cookies are
//! kept by hand and whose forms carry the page's CSRF token.

use std::collections::HashMap;

use reqwest::StatusCode;

use super::Server;

/// The user `--dev` creates.
pub const DEV_EMAIL: &str = "dev@switchboard.local";
/// Their password.
pub const DEV_PASSWORD: &str = "switchboard-dev";

/// A browser without a browser: cookies kept by hand, forms posted with the CSRF token.
pub struct Session<'a> {
    s: &'a Server,
    /// The cookies set so far.
    pub cookies: HashMap<String, String>,
    /// The CSRF token of the last page read.
    pub csrf: String,
    /// Sent with every request, as a proxy in front of the server would add them.
    pub headers: Vec<(String, String)>,
}

impl<'a> Session<'a> {
    /// A signed-out session on `s`.
    pub fn new(s: &'a Server) -> Self {
        Self {
            s,
            cookies: HashMap::new(),
            csrf: String::new(),
            headers: Vec::new(),
        }
    }

    /// This session, sending `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = no_redirects()
            .request(method, format!("{}{path}", self.s.base))
            .header("cookie", self.cookie_header());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req
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

    /// The `Cookie` header of the cookies kept.
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GETs `path` (no redirects followed); returns the status and the body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let res = self
            .request(reqwest::Method::GET, path)
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
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if !fields.iter().any(|(k, _)| *k == "csrf") {
            form.push(("csrf".into(), self.csrf.clone()));
        }
        let res = self
            .request(reqwest::Method::POST, path)
            .form(&form)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// Sends the function upload form: `name`, `room.*` and `component` as the file.
    pub async fn upload(
        &mut self,
        path: &str,
        name: &str,
        component: Vec<u8>,
    ) -> (StatusCode, String) {
        let form = reqwest::multipart::Form::new()
            .text("csrf", self.csrf.clone())
            .text("name", name.to_owned())
            .text("events", "room.*")
            .text("activate", "true")
            .part(
                "component",
                reqwest::multipart::Part::bytes(component).file_name("f.wasm"),
            );
        let res = self
            .request(reqwest::Method::POST, path)
            .multipart(form)
            .send()
            .await
            .unwrap();
        self.keep(&res);
        let status = res.status();
        (status, res.text().await.unwrap())
    }

    /// Signs in through the form; the status of the answer (303 when it worked).
    pub async fn sign_in(&mut self, email: &str, password: &str) -> StatusCode {
        self.get("/dashboard/login").await;
        self.post(
            "/dashboard/login",
            &[("email", email), ("password", password)],
        )
        .await
        .0
    }
}

/// A client that shows redirects instead of following them.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn hidden_csrf(body: &str) -> Option<String> {
    let at = body.find(r#"name="csrf" value=""#)? + r#"name="csrf" value=""#.len();
    Some(body[at..].split('"').next()?.to_owned())
}
