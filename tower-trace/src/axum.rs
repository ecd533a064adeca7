//! axum integration (feature `axum`): the route template from axum's `MatchedPath`, and the
//! peer address from `ConnectInfo<SocketAddr>`.
//!
//! `Router::layer` applies a layer to each route after routing, so `MatchedPath` is already in
//! the request extensions when [`ServerLayer`](crate::ServerLayer) runs, and the span is named
//! `GET /orders/{id}` rather than `GET`.

use std::borrow::Cow;

use axum::extract::MatchedPath;

use crate::RequestView;

/// The route extractor [`ServerLayer`](crate::ServerLayer) uses by default with this feature.
pub fn matched_path<'a>(req: &RequestView<'a>) -> Option<Cow<'a, str>> {
    req.extensions
        .get::<MatchedPath>()
        .map(|path| Cow::Borrowed(path.as_str()))
}
