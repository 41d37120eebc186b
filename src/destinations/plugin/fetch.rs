//! Plug-ins' HTTP: the webhook client's connections and resolver, so the network policy holds
//! for every request a plug-in makes (a name resolving to a private address is refused, an
//! address literal is checked before connecting); no redirects, a bounded body.

use async_trait::async_trait;

use super::super::webhook::WebhookClient;
use crate::plugins::{Fetch, Request, Response};

/// The largest body a plug-in gets back.
const BODY_MAX: usize = 1024 * 1024;

/// HTTP for plug-ins through the webhook client.
pub struct HttpFetch {
    /// The client, with the network policy as its resolver.
    pub client: WebhookClient,
}

#[async_trait]
impl Fetch for HttpFetch {
    async fn fetch(&self, request: Request) -> Result<Response, String> {
        self.client
            .policy()
            .check_literal(&request.url)
            .map_err(|e| format!("refused: {e}"))?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", request.method))?;
        let mut builder = self
            .client
            .http()
            .request(method, request.url)
            .timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body);
        }
        let mut answer = builder
            .send()
            .await
            .map_err(|e| super::super::error_chain(&e))?;
        let status = answer.status().as_u16();
        let headers = answer
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = answer
            .chunk()
            .await
            .map_err(|e| super::super::error_chain(&e))?
        {
            if body.len() + chunk.len() > BODY_MAX {
                return Err(format!("the answer is larger than {BODY_MAX} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}
