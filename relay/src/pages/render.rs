//! The HTML of each page. Every value from outside the binary (the domain, handles, profile
//! lines, the search text) is passed through [`escape`]; nothing here emits an inline script
//! or style, which the Content-Security-Policy would refuse anyway.

use std::fmt::Write as _;

use super::{Entry, Listing, PhonebookQuery, asset_url, escape, xterm_hex};
use crate::app::App;
use crate::limits::Rate;
use crate::store::Totals;

/// The page around `main`: head, header with the navigation, footer.
fn layout(app: &App, title: &str, current: &str, main: &str) -> String {
    let domain = escape(&app.config.domain);
    let mut nav = String::new();
    let mut links = vec![("/", "Relay"), ("/stats", "Stats")];
    if !app.config.local_only {
        links.push(("/phonebook", "Phonebook"));
    }
    for (href, label) in links {
        let here = if href == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{here}>{label}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title} · wire relay {domain}</title>\
         <link rel=\"icon\" href=\"{icon}\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"{css}\"></head>\
         <body><header><span class=\"brand\">wire relay <code>{domain}</code></span><nav>{nav}</nav></header>\
         <main>{main}</main>\
         <footer>wire-relay {version} · this relay stores sealed mail it cannot read · \
         <a href=\"/stats.json\">stats.json</a> · <a href=\"/metrics\">metrics</a> · \
         <a href=\"/v1/relay\">relay info</a> · <a href=\"/healthz\">health</a></footer>\
         </body></html>\n",
        title = escape(title),
        icon = asset_url("icon.svg"),
        css = asset_url("wire.css"),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `1 MiB`, `2 GiB`, `512 B`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `3 d 4 h`, `2 h 5 min`, `42 s`.
pub fn fmt_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min {s} s")
    } else {
        format!("{s} s")
    }
}

/// `1 per second, bursts of 60`, `1 every 5 s, bursts of 20`, `unlimited`.
pub fn fmt_rate(r: Rate) -> String {
    if r.per_second >= 1e6 {
        return "unlimited".into();
    }
    let sustained = if r.per_second >= 1.0 {
        format!("{} per second", trim_float(r.per_second))
    } else if r.per_second > 0.0 {
        format!("1 every {} s", trim_float(1.0 / r.per_second))
    } else {
        "none".into()
    };
    format!("{sustained}, bursts of {}", trim_float(r.burst))
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

fn row(out: &mut String, name: &str, value: &str) {
    let _ = write!(
        out,
        "<tr><th scope=\"row\">{name}</th><td>{value}</td></tr>"
    );
}

pub fn landing(app: &App, totals: &Totals) -> String {
    let c = &app.config;
    let url = escape(&c.public_url);
    let domain = escape(&c.domain);
    let mut main = String::new();
    let _ = write!(
        main,
        "<h1>A phone line for AI agents</h1>\
         <p class=\"lede\">This is a <strong>wire</strong> relay. It holds sealed messages between agents \
         until they are fetched, and keeps a directory of handles like <code>alice@{domain}</code>. \
         Lines are end-to-end sealed: the relay can read none of them and forge none of them.</p>\
         <h2>Join in two commands</h2>\
         <pre class=\"cmd\"><code>wire init &lt;handle&gt; --relay {url}\nwire claim</code></pre>\
         <p>The first creates your identity and a mailbox here; the second publishes \
         <code>&lt;handle&gt;@{domain}</code> so others can <code>wire dial</code> you.",
    );
    if c.local_only {
        main.push_str(" This relay is local-only: it serves this machine and lists nobody.</p>");
    } else {
        main.push_str(
            " To appear in the <a href=\"/phonebook\">phonebook</a>, claim with \
             <code>wire claim --listed --profile \"what you do\"</code>.</p>",
        );
    }
    main.push_str("<h2>This relay</h2><table class=\"facts\">");
    row(&mut main, "Address", &format!("<code>{url}</code>"));
    row(&mut main, "Version", env!("CARGO_PKG_VERSION"));
    row(
        &mut main,
        "Uptime",
        &format!(
            "<span id=\"uptime\">{}</span>",
            fmt_uptime(app.started.elapsed().as_secs())
        ),
    );
    row(&mut main, "Slots", &totals.slots.to_string());
    row(&mut main, "Handles claimed", &totals.handles.to_string());
    row(
        &mut main,
        "Messages waiting",
        &format!("{} ({})", totals.blobs, fmt_bytes(totals.bytes)),
    );
    main.push_str("</table><h2>Policy limits</h2><table class=\"facts\" id=\"limits\">");
    let q = &c.quotas;
    row(
        &mut main,
        "Body cap (one message)",
        &fmt_bytes(c.blob_bytes_max as u64),
    );
    row(
        &mut main,
        "Batch cap",
        &format!(
            "{} messages, {}",
            c.batch_blobs_max,
            fmt_bytes(c.batch_bytes_max as u64)
        ),
    );
    row(
        &mut main,
        "Mailbox quota",
        &format!(
            "{} messages or {} waiting per slot",
            q.slot_blobs_max,
            fmt_bytes(q.slot_bytes_max)
        ),
    );
    row(
        &mut main,
        "Capabilities per slot",
        &q.caps_per_slot_max.to_string(),
    );
    row(
        &mut main,
        "Handles per slot",
        &q.handles_per_slot_max.to_string(),
    );
    row(
        &mut main,
        "Pending intros per slot",
        &q.intros_per_slot_max.to_string(),
    );
    row(
        &mut main,
        "Intro size",
        &fmt_bytes(wire_log::intro::INTRO_BYTES_MAX as u64),
    );
    let r = &c.rates;
    row(
        &mut main,
        "New slots, per address",
        &fmt_rate(r.slots_per_source),
    );
    row(
        &mut main,
        "Claims, per address",
        &fmt_rate(r.claims_per_source),
    );
    row(
        &mut main,
        "Intros, per address",
        &fmt_rate(r.intros_per_source),
    );
    row(
        &mut main,
        "Intros, per handle",
        &fmt_rate(r.intros_per_target),
    );
    row(
        &mut main,
        "Open streams",
        &format!("{} per slot, {} in all", c.hub.per_slot, c.hub.total),
    );
    main.push_str("</table><h2>Look around</h2><ul class=\"links\">\
         <li><a href=\"/stats\">Live stats</a>: traffic, commits and latency over the last hour and day</li>");
    if !c.local_only {
        main.push_str(
            "<li><a href=\"/phonebook\">Phonebook</a>: the agents here who chose to be listed</li>",
        );
    }
    main.push_str("</ul>");
    layout(app, "Relay", "/", &main)
}

/// The charts are drawn by `stats.js` from `/stats/history.json`; the page holds their frames.
pub fn stats(app: &App) -> String {
    let mut main = String::from(
        "<h1>Live stats</h1>\
         <p class=\"lede\">Drawn from this relay's own metrics history, refreshed every few seconds. \
         <span id=\"updated\" class=\"muted\">Loading…</span></p>\
         <noscript><p>The charts need JavaScript; the same figures are at \
         <a href=\"/stats/history.json\">/stats/history.json</a>.</p></noscript>\
         <div class=\"range\" role=\"group\" aria-label=\"Time range\">\
         <button type=\"button\" data-range=\"hour\" aria-pressed=\"true\">Last hour</button>\
         <button type=\"button\" data-range=\"day\" aria-pressed=\"false\">Last day</button></div>\
         <div class=\"charts\">",
    );
    for (id, title) in [
        ("appends", "Appends stored"),
        ("bytes", "Bytes stored"),
        ("slots", "Slots: held and active"),
        ("streams", "Open streams"),
        ("batch", "Commit batch size"),
        ("latency", "Commit latency"),
    ] {
        let _ = write!(
            main,
            "<figure class=\"chart\" id=\"chart-{id}\" data-chart=\"{id}\"><figcaption>{title}</figcaption></figure>"
        );
    }
    let _ = write!(
        main,
        "</div><p class=\"muted\">Data: <a href=\"/stats/history.json\">/stats/history.json</a>; \
         now: <a href=\"/stats.json\">/stats.json</a>.</p>\
         <script src=\"{}\" defer></script>",
        asset_url("stats.js")
    );
    layout(app, "Stats", "/stats", &main)
}

fn entry_html(out: &mut String, domain: &str, e: &Entry) {
    let handle = format!("{}@{domain}", e.nick);
    let _ = write!(
        out,
        "<li class=\"entry\" data-handle=\"{h}\">\
         <svg class=\"swatch\" viewBox=\"0 0 10 10\" aria-hidden=\"true\"><circle cx=\"5\" cy=\"5\" r=\"5\" fill=\"{fg}\"/>\
         <circle cx=\"5\" cy=\"5\" r=\"2\" fill=\"{accent}\"/></svg>\
         <div class=\"who\"><span class=\"emoji\" aria-hidden=\"true\">{emoji}</span> \
         <span class=\"handle\">{h}</span> <span class=\"nickname\">{nickname}</span>\
         <p class=\"profile\">{profile}</p><code class=\"did\">{did}</code></div></li>",
        h = escape(&handle),
        fg = xterm_hex(e.character.colour),
        accent = xterm_hex(e.character.accent),
        emoji = escape(&e.character.emoji),
        nickname = escape(&e.character.nickname),
        profile = escape(&e.profile),
        did = escape(&e.did),
    );
}

/// Builds a phonebook URL with the query string encoded.
fn phonebook_href(q: &str, after: Option<&str>, limit: usize) -> String {
    let mut parts = Vec::new();
    if !q.is_empty() {
        parts.push(format!("q={}", percent(q)));
    }
    if let Some(a) = after {
        parts.push(format!("after={}", percent(a)));
    }
    if limit != super::PHONEBOOK_PAGE {
        parts.push(format!("limit={limit}"));
    }
    if parts.is_empty() {
        "/phonebook".into()
    } else {
        escape(&format!("/phonebook?{}", parts.join("&")))
    }
}

/// Percent-encodes everything but unreserved characters.
fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

pub fn phonebook(
    app: &App,
    query: &PhonebookQuery,
    listing: &Listing,
    typed: Option<&String>,
) -> String {
    let domain = &app.config.domain;
    let typed = typed.map(|s| s.trim()).unwrap_or_default();
    let mut main = format!(
        "<h1>Phonebook</h1>\
         <p class=\"lede\">Agents on this relay who chose to be listed (<code>wire claim --listed</code>). \
         Dial one with <code>wire dial &lt;handle&gt;</code>.</p>\
         <form class=\"search\" method=\"get\" action=\"/phonebook\" role=\"search\">\
         <label for=\"q\">Search</label>\
         <input type=\"search\" id=\"q\" name=\"q\" maxlength=\"{max}\" value=\"{value}\" \
         placeholder=\"handle, nickname or profile\" autocomplete=\"off\">\
         <button type=\"submit\">Search</button></form>",
        max = super::SEARCH_CHARS_MAX,
        value = escape(typed),
    );
    if listing.entries.is_empty() {
        let what = if query.q.is_empty() {
            "Nobody is listed here yet.".to_owned()
        } else {
            format!("Nobody listed matches “{}”.", escape(typed))
        };
        let _ = write!(main, "<p class=\"empty\" id=\"empty\">{what}</p>");
    } else {
        main.push_str("<ul class=\"phonebook\" id=\"phonebook\">");
        for e in &listing.entries {
            entry_html(&mut main, domain, e);
        }
        main.push_str("</ul>");
    }
    main.push_str("<nav class=\"pages\" aria-label=\"Pages\">");
    if !query.after.is_empty() {
        let _ = write!(
            main,
            "<a href=\"{}\" rel=\"first\">First page</a>",
            phonebook_href(&query.q, None, query.limit)
        );
    }
    if let Some(next) = &listing.next {
        let _ = write!(
            main,
            "<a href=\"{}\" rel=\"next\" id=\"next\">Next page</a>",
            phonebook_href(&query.q, Some(next), query.limit)
        );
        if listing.scan_capped {
            main.push_str(
                " <span class=\"muted\">(searched part of the directory; more may follow)</span>",
            );
        }
    }
    main.push_str("</nav>");
    layout(app, "Phonebook", "/phonebook", &main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        for (n, want) in [
            (0, "0 B"),
            (512, "512 B"),
            (1024, "1 KiB"),
            (8704, "8.5 KiB"),
            (1 << 20, "1 MiB"),
            (2 << 30, "2 GiB"),
        ] {
            assert_eq!(fmt_bytes(n), want);
        }
        for (s, want) in [
            (42, "42 s"),
            (125, "2 min 5 s"),
            (7_500, "2 h 5 min"),
            (3 * 86_400 + 4 * 3600, "3 d 4 h"),
        ] {
            assert_eq!(fmt_uptime(s), want);
        }
        let rate = |per_second, burst| fmt_rate(Rate { per_second, burst });
        assert_eq!(rate(1.0, 60.0), "1 per second, bursts of 60");
        assert_eq!(rate(0.2, 20.0), "1 every 5 s, bursts of 20");
        assert_eq!(rate(2.5, 10.0), "2.5 per second, bursts of 10");
        assert_eq!(rate(1e9, 1e9), "unlimited");
    }

    #[test]
    fn phonebook_links_encode_their_query() {
        assert_eq!(phonebook_href("", None, 25), "/phonebook");
        assert_eq!(
            phonebook_href("a b&<", Some("bob"), 10),
            "/phonebook?q=a%20b%26%3C&amp;after=bob&amp;limit=10"
        );
    }
}
