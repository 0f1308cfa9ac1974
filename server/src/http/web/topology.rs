//! The topology diagram: the LLDP graph laid out on the server (a
//! deterministic force-directed layout) and drawn as SVG, each device
//! coloured by its open cases. No script is needed to see it.

use std::fmt::Write;

use super::charts::esc;
use crate::agents::topology::TopologyGraph;

const W: f64 = 960.0;
const H: f64 = 560.0;
const MARGIN: f64 = 70.0;

/// Positions for `n` nodes with `edges` (index pairs), inside W x H.
fn layout(n: usize, edges: &[(usize, usize)]) -> Vec<(f64, f64)> {
    if n == 0 {
        return Vec::new();
    }
    // Start on a circle (deterministic), then Fruchterman-Reingold.
    let (cx, cy) = (W / 2.0, H / 2.0);
    let r0 = (W.min(H) / 2.0 - MARGIN).max(10.0);
    let mut pos: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            let a = std::f64::consts::TAU * i as f64 / n as f64;
            (cx + r0 * a.cos(), cy + r0 * a.sin())
        })
        .collect();
    if n == 1 {
        return vec![(cx, cy)];
    }
    let area = (W - 2.0 * MARGIN) * (H - 2.0 * MARGIN);
    let k = (area / n as f64).sqrt() * 0.8;
    let iterations = if n > 150 { 60 } else { 200 };
    let mut temp = W / 8.0;
    for _ in 0..iterations {
        let mut disp = vec![(0.0f64, 0.0f64); n];
        for i in 0..n {
            for j in (i + 1)..n {
                let (dx, dy) = (pos[i].0 - pos[j].0, pos[i].1 - pos[j].1);
                let d = (dx * dx + dy * dy).sqrt().max(0.01);
                let f = k * k / d;
                disp[i].0 += dx / d * f;
                disp[i].1 += dy / d * f;
                disp[j].0 -= dx / d * f;
                disp[j].1 -= dy / d * f;
            }
        }
        for &(a, b) in edges {
            if a == b {
                continue;
            }
            let (dx, dy) = (pos[a].0 - pos[b].0, pos[a].1 - pos[b].1);
            let d = (dx * dx + dy * dy).sqrt().max(0.01);
            let f = d * d / k;
            disp[a].0 -= dx / d * f;
            disp[a].1 -= dy / d * f;
            disp[b].0 += dx / d * f;
            disp[b].1 += dy / d * f;
        }
        for i in 0..n {
            let (dx, dy) = disp[i];
            let d = (dx * dx + dy * dy).sqrt().max(0.01);
            let step = d.min(temp);
            pos[i].0 = (pos[i].0 + dx / d * step).clamp(MARGIN, W - MARGIN);
            pos[i].1 = (pos[i].1 + dy / d * step).clamp(MARGIN / 2.0, H - MARGIN / 2.0);
        }
        temp = (temp * 0.97).max(1.0);
    }
    pos
}

/// The graph as a standalone SVG document fragment (usable inline or served
/// as `image/svg+xml`).
pub fn svg(g: &TopologyGraph) -> String {
    let index: std::collections::HashMap<&str, usize> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let edges: Vec<(usize, usize)> = g
        .edges
        .iter()
        .filter_map(|e| Some((*index.get(e.from.as_str())?, *index.get(e.to.as_str())?)))
        .collect();
    let pos = layout(g.nodes.len(), &edges);
    let mut s = String::new();
    let faulty = g.nodes.iter().filter(|n| n.open_cases > 0).count();
    let _ = write!(
        s,
        r#"<svg class="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="topo-title topo-desc"><title id="topo-title">Network topology</title><desc id="topo-desc">{} devices, {} links, {} with open cases: {}</desc>"#,
        g.nodes.len(),
        g.edges.len(),
        faulty,
        esc(&g
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "))
    );
    if g.nodes.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="16" fill="#5b6475">No devices yet, and no links learnt over LLDP.</text>"##,
            W / 2.0,
            H / 2.0
        );
    }
    s.push_str(r##"<g stroke="#7d8799" stroke-width="2">"##);
    for (e, &(a, b)) in g.edges.iter().zip(edges.iter()) {
        let ((x1, y1), (x2, y2)) = (pos[a], pos[b]);
        let _ = write!(
            s,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}"><title>{} {} - {} {}</title></line>"#,
            esc(&g.nodes[a].name),
            esc(&e.local_port),
            esc(&g.nodes[b].name),
            esc(&e.remote_port)
        );
    }
    s.push_str("</g>");
    // Port labels, a quarter of the way along each link.
    s.push_str(r##"<g font-size="10" fill="#3d4555" font-family="system-ui,sans-serif">"##);
    for (e, &(a, b)) in g.edges.iter().zip(edges.iter()) {
        let ((x1, y1), (x2, y2)) = (pos[a], pos[b]);
        let at = |t: f64| (x1 + (x2 - x1) * t, y1 + (y2 - y1) * t);
        let (lx, ly) = at(0.25);
        let (rx, ry) = at(0.75);
        let _ = write!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="middle">{}</text><text x="{rx:.1}" y="{ry:.1}" text-anchor="middle">{}</text>"#,
            esc(&e.local_port),
            esc(&e.remote_port)
        );
    }
    s.push_str("</g>");
    for (n, &(x, y)) in g.nodes.iter().zip(pos.iter()) {
        let (fill, state) = match (n.device_id, n.open_cases) {
            (None, _) => ("#c5cad3", "neighbour seen over LLDP".to_string()),
            (Some(_), 0) => ("#2e8b57", "no open cases".to_string()),
            (Some(_), 1) => ("#c62828", "1 open case".to_string()),
            (Some(_), k) => ("#c62828", format!("{k} open cases")),
        };
        let label = esc(&n.name);
        let model = n.model.as_deref().map(esc).unwrap_or_default();
        let open = match n.device_id {
            Some(id) => format!(r#"<a href="/cases?device_id={id}">"#),
            None => "<g>".into(),
        };
        let close = if n.device_id.is_some() {
            "</a>"
        } else {
            "</g>"
        };
        let _ = write!(
            s,
            r##"{open}<g class="node" data-node="{id}" data-open-cases="{oc}"><title>{label}{sep}{model}: {state}</title><circle cx="{x:.1}" cy="{y:.1}" r="16" fill="{fill}" stroke="#1d2330" stroke-width="1.5"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" font-size="13" font-weight="600" fill="#1d2330" font-family="system-ui,sans-serif">{label}</text><text x="{x:.1}" y="{my:.1}" text-anchor="middle" font-size="10" fill="#5b6475" font-family="system-ui,sans-serif">{model}</text></g>{close}"##,
            id = esc(&n.id),
            oc = n.open_cases,
            sep = if model.is_empty() { "" } else { ", " },
            ty = y + 30.0,
            my = y + 42.0,
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::topology::{TopologyEdge, TopologyNode};

    fn node(id: &str, device: Option<i64>, open: i64) -> TopologyNode {
        TopologyNode {
            id: id.into(),
            name: id.trim_start_matches("lldp:").into(),
            device_id: device,
            model: device.map(|_| "X<1>".into()),
            open_cases: open,
        }
    }

    #[test]
    fn draws_every_node_and_link_inside_the_canvas_coloured_by_cases() {
        let g = TopologyGraph {
            organization_id: 1,
            nodes: vec![
                node("device:1", Some(1), 0),
                node("device:2", Some(2), 2),
                node("lldp:core&1", None, 0),
            ],
            edges: vec![
                TopologyEdge {
                    from: "device:1".into(),
                    to: "device:2".into(),
                    local_port: "ge-0/0/1".into(),
                    remote_port: "Gi1/0/1".into(),
                },
                TopologyEdge {
                    from: "device:2".into(),
                    to: "lldp:core&1".into(),
                    local_port: "Gi1/0/48".into(),
                    remote_port: "xe-1".into(),
                },
            ],
        };
        let s = svg(&g);
        assert_eq!(s.matches("<circle").count(), 3);
        assert_eq!(s.matches("<line").count(), 2);
        assert!(s.contains("core&amp;1") && s.contains("X&lt;1&gt;"));
        assert!(s.contains("2 open cases") && s.contains(r##"fill="#c62828""##));
        assert!(s.contains(r##"fill="#2e8b57""##) && s.contains(r##"fill="#c5cad3""##));
        let pos = layout(3, &[(0, 1), (1, 2)]);
        assert!(pos
            .iter()
            .all(|&(x, y)| (0.0..=W).contains(&x) && (0.0..=H).contains(&y)));
        // Deterministic.
        assert_eq!(svg(&g), s);
    }

    #[test]
    fn an_empty_graph_says_so() {
        let g = TopologyGraph {
            organization_id: 1,
            nodes: vec![],
            edges: vec![],
        };
        assert!(svg(&g).contains("No devices yet"));
    }
}
