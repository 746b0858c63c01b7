//! Live parts of pages: a stream of server-sent events that carries an
//! element's new content whenever it changes, for `assets/live.js` to put in
//! place (an element with `data-live="URL"` follows the stream at URL).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use switchboard_store::projects::Project;

use crate::error::PageError;
use crate::session::SignedIn;
use crate::Dashboard;

/// How often a live element looks for changes, unless it says otherwise.
pub(super) const REFRESH: Duration = Duration::from_secs(1);

/// What a live element shows now.
pub(super) struct Frame {
    /// Changes when the element must be replaced whole.
    pub(super) key: String,
    /// The element's new content.
    pub(super) whole: String,
    /// Elements with ids, replaced one by one when only they changed.
    pub(super) parts: String,
}

impl Frame {
    /// Content that is always replaced whole.
    pub(super) fn whole(html: String) -> Self {
        Self {
            key: html.clone(),
            whole: html,
            parts: String::new(),
        }
    }
}

/// A stream of `render`'s frames, looked at every `every`: the whole
/// content when its key changes (a default event), else the parts when they
/// change (a `parts` event); until the session ends, the user leaves the
/// project, or what is shown is gone.
pub(super) fn updates<F, Fut>(
    d: Dashboard,
    who: SignedIn,
    project: Project,
    every: Duration,
    render: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(Dashboard, SignedIn, Project) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Frame, PageError>> + Send,
{
    let shown = (String::new(), String::new());
    let stream = futures::stream::unfold(
        (d, who, project, shown, render),
        move |(d, who, project, (key, parts), render)| async move {
            loop {
                tokio::time::sleep(every).await;
                let now = d.clock.now();
                let session = d.store.users().session(&who.token_hash, now).await;
                let member = d.store.users().is_member(who.user.id, project.id).await;
                if !matches!(session, Ok(Some(_))) || !member.unwrap_or(false) {
                    return None;
                }
                let frame = match render(d.clone(), who.clone(), project.clone()).await {
                    Ok(frame) => frame,
                    Err(PageError::NotFound) => return None,
                    // A node not answering: what is shown stays until the next look.
                    Err(_) => continue,
                };
                let event = if frame.key != key {
                    Event::default().data(frame.whole)
                } else if frame.parts != parts {
                    Event::default().event("parts").data(frame.parts.clone())
                } else {
                    continue;
                };
                let shown = (frame.key, frame.parts);
                return Some((Ok(event), (d, who, project, shown, render)));
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
