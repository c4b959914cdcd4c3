//! HTML of the dashboard's fragments: tables made of the `util` listings' own lines (so a
//! page shows what the command prints, cell for cell), escaped, with a column of action
//! controls where the viewer may act.

use std::fmt::Write as _;

/// `text` safe inside HTML text and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table of a listing's `lines` (a header line, then a line per row, cells separated by
/// tabs, as the `*_lines` renderers give them), captioned `caption`; `extra` is the HTML
/// of one more cell per row (actions, links), headed `extra_header`, when given. Cells
/// whose text is longer than 80 characters keep their whole text in a `title`.
pub fn table(
    caption: &str,
    lines: &[String],
    extra_header: Option<&str>,
    mut extra: impl FnMut(usize) -> String,
) -> String {
    let mut html = format!("<table><caption>{}</caption><thead><tr>", escape(caption));
    let Some((header, rows)) = lines.split_first() else {
        return html + "</tr></thead></table>";
    };
    for name in header.split('\t') {
        let _ = write!(html, "<th scope=\"col\">{}</th>", escape(name));
    }
    if let Some(name) = extra_header {
        let _ = write!(html, "<th scope=\"col\">{}</th>", escape(name));
    }
    html.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let columns = header.split('\t').count() + usize::from(extra_header.is_some());
        let _ = write!(
            html,
            "<tr><td colspan=\"{columns}\" class=\"none\">none</td></tr>"
        );
    }
    for (i, row) in rows.iter().enumerate() {
        html.push_str("<tr>");
        for value in row.split('\t') {
            html.push_str(&cell(value));
        }
        if extra_header.is_some() {
            let _ = write!(html, "<td class=\"act\">{}</td>", extra(i));
        }
        html.push_str("</tr>");
    }
    html + "</tbody></table>"
}

fn cell(value: &str) -> String {
    let value = value.trim_end();
    if value.chars().count() > 80 {
        format!("<td class=\"long\" title=\"{0}\">{0}</td>", escape(value))
    } else {
        format!("<td>{}</td>", escape(value))
    }
}

/// A button that asks for `action` with `fields` (name, value) as its data.
pub fn button(label: &str, action: &str, fields: &[(&str, &str)]) -> String {
    let mut html = format!("<button type=\"button\" data-action=\"{}\"", escape(action));
    for (name, value) in fields {
        let _ = write!(html, " data-{}=\"{}\"", name, escape(value));
    }
    let _ = write!(html, ">{}</button>", escape(label));
    html
}

/// A select of `options` (the first, `placeholder`, empty) that a button with
/// `data-with="<id>"` sends as `field`.
pub fn select(id: &str, label: &str, placeholder: &str, options: &[String]) -> String {
    let mut html = format!(
        "<select id=\"{0}\" aria-label=\"{1}\"><option value=\"\">{2}</option>",
        escape(id),
        escape(label),
        escape(placeholder)
    );
    for option in options {
        let _ = write!(html, "<option>{}</option>", escape(option));
    }
    html + "</select>"
}

/// A link to the dashboard's `route` (`#/worker/w1`).
pub fn link(route: &str, text: &str) -> String {
    format!("<a href=\"#{}\">{}</a>", escape(route), escape(text))
}

/// A route segment: `text` percent-encoded (a space as `%20`, which the page's
/// `decodeURIComponent` reads back; a `+` of the text is `%2B`).
pub fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A figure with its label, for the overview.
pub fn figure(label: &str, value: impl std::fmt::Display, class: &str) -> String {
    format!(
        "<div class=\"figure {}\"><span class=\"value\">{}</span><span class=\"label\">{}</span></div>",
        escape(class),
        escape(&value.to_string()),
        escape(label)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_escaped_and_rows_get_their_extra_cell() {
        let lines = vec!["Name\tState".to_owned(), "<script>\ta & \"b\"".to_owned()];
        let html = table("t", &lines, Some("Actions"), |i| format!("row {i}"));
        assert!(html.contains("<td>&lt;script&gt;</td><td>a &amp; &quot;b&quot;</td>"));
        assert!(html.contains("<td class=\"act\">row 0</td>"));
        assert!(!html.contains("<script>"));
        let empty = table("t", &lines[..1], None, |_| String::new());
        assert!(empty.contains("<td colspan=\"2\" class=\"none\">none</td>"));
    }
}
