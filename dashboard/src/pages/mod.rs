//! The dashboard's pages, one module per section.

use maud::{html, Markup};
use serde::Deserialize;
use switchboard_store::projects::Project;

use crate::layout;
use crate::session::SignedIn;

pub mod call;
pub mod estimate;
pub mod export;
pub mod functions;
pub mod keys;
mod live;
pub mod login;
pub mod overview;
pub mod recordings;
pub mod rooms;
mod timeline;
pub mod usage;
pub mod webhooks;

/// A form that carries nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    /// The session's CSRF token.
    pub csrf: String,
}

/// The hidden field every form of a session carries.
pub fn csrf_field(who: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// The projects a user belongs to, to pick one.
pub fn project_list(who: &SignedIn, projects: &[Project]) -> Markup {
    layout::shell(
        "Your projects",
        html! {
            @if projects.is_empty() {
                p { "You do not belong to any project yet. An operator adds you with "
                    code { "switchboard user create " (who.user.email) " --project PROJECT" } "." }
            } @else {
                ul {
                    @for p in projects {
                        li { a href=(layout::project_path(p)) { (p.name) } " " span.muted { "(" (p.id) ")" } }
                    }
                }
            }
            form method="post" action="/dashboard/logout" {
                (csrf_field(who))
                button type="submit" { "Sign out" }
            }
        },
    )
}

/// How long ago (or how long) `secs` seconds is, for people: `3 min`, `2 h 5 min`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human_duration(-5), "0 s");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(61), "1 min");
        assert_eq!(human_duration(7500), "2 h 5 min");
    }
}
