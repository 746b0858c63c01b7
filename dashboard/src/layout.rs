//! The page shell every dashboard page shares: the document head, the
//! project's navigation and the sign-out form. Styles and the one script
//! are files of their own (`assets/`), so the content security policy
//! allows no inline code.

use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use switchboard_store::projects::Project;
use switchboard_store::users::User;

/// The sections of a project, in the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Live numbers and the last 30 days.
    Overview,
    /// Live rooms and their participants.
    Rooms,
    /// Recordings and their files.
    Recordings,
    /// Functions, their versions and invocations.
    Functions,
    /// Webhook endpoints and their deliveries.
    Webhooks,
    /// API keys.
    Keys,
    /// Meters per day, the invoice so far, the Stripe link.
    Usage,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::Overview,
        Section::Rooms,
        Section::Recordings,
        Section::Functions,
        Section::Webhooks,
        Section::Keys,
        Section::Usage,
    ];

    fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Rooms => "Rooms",
            Section::Recordings => "Recordings",
            Section::Functions => "Functions",
            Section::Webhooks => "Webhooks",
            Section::Keys => "API keys",
            Section::Usage => "Usage",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Section::Overview => "",
            Section::Rooms => "/rooms",
            Section::Recordings => "/recordings",
            Section::Functions => "/functions",
            Section::Webhooks => "/webhooks",
            Section::Keys => "/keys",
            Section::Usage => "/usage",
        }
    }
}

/// Who is looking at which project, for the navigation.
pub struct Nav<'a> {
    /// The signed-in user.
    pub user: &'a User,
    /// Their session's CSRF token (the sign-out form carries it).
    pub csrf: &'a str,
    /// The project shown.
    pub project: &'a Project,
    /// The section shown.
    pub section: Section,
}

/// Characters a path segment cannot hold as they are.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'\'');

/// `s` as one segment of a URL path (a room name, an identity).
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

impl<'a> Nav<'a> {
    /// The navigation of `project`'s `section`, as `who` sees it.
    pub fn new(who: &'a crate::session::SignedIn, project: &'a Project, section: Section) -> Self {
        Self {
            user: &who.user,
            csrf: &who.csrf,
            project,
            section,
        }
    }
}

/// The `/dashboard/projects/{id}` prefix of a project's pages.
pub fn project_path(project: &Project) -> String {
    format!("/dashboard/projects/{}", project.id)
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Switchboard" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/dashboard/assets/dashboard.css";
            script src="/dashboard/assets/live.js" defer {}
        }
    }
}

/// A page of a project.
pub fn page(title: &str, nav: &Nav<'_>, body: Markup) -> Markup {
    let base = project_path(nav.project);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    p.brand { a href="/dashboard" { "Switchboard" } " · " (nav.project.name) }
                    nav aria-label="Project" {
                        ul {
                            @for s in Section::ALL {
                                li {
                                    a href={ (base) (s.path()) }
                                        aria-current=[(s == nav.section).then_some("page")] { (s.label()) }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/dashboard/logout" {
                        input type="hidden" name="csrf" value=(nav.csrf);
                        span { (nav.user.email) }
                        " "
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page outside any project (signing in, errors, the project list).
pub fn bare(title: &str, message: &str) -> Markup {
    shell(
        title,
        html! { p { (message) } p { a href="/dashboard" { "Back to the dashboard" } } },
    )
}

/// A page outside any project, with `body`.
pub fn shell(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header { p.brand { a href="/dashboard" { "Switchboard" } } }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_single_path_segments() {
        assert_eq!(segment("standup"), "standup");
        assert_eq!(segment("a/b?c#d e%"), "a%2Fb%3Fc%23d%20e%25");
        assert_eq!(segment("café"), "caf%C3%A9");
    }
}
