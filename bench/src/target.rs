//! The server a load generator drives, as every benchmark binary takes it.

/// Where the server is, how to authenticate, and how to label the result.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:7880")]
    pub url: String,
    /// API key id.
    #[arg(long, default_value = "devkey")]
    pub api_key: String,
    /// API key secret.
    #[arg(long, default_value = "secret")]
    pub api_secret: String,
    /// Label for the result (such as the backend).
    #[arg(long, default_value = "")]
    pub label: String,
}

impl Target {
    /// `req` with the API key's Basic credentials.
    pub fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.basic_auth(&self.api_key, Some(&self.api_secret))
    }
}
