//! The topology diagram: the LLDP graph laid out on the server (a
//! deterministic force-directed layout) and drawn as SVG, each device
//! coloured by its open cases. No script is needed to see it.

use std::fmt::Write;

use super::charts::esc;
use crate::agents::topology::TopologyGraph;

const W: f64 = 960.0;
const H: f64 = 560.0;
const MARGIN: f64 = 80.0;

/// A layered layout: each connected part is walked breadth-first from its
/// best-connected node (the core, usually), one row per hop; within a row,
/// nodes sit under the mean position of their parents (fewer crossings).
/// Returns the positions and the canvas size.
fn layout(n: usize, edges: &[(usize, usize)]) -> (Vec<(f64, f64)>, f64, f64) {
    let mut adj = vec![Vec::new(); n];
    for &(a, b) in edges {
        if a != b {
            adj[a].push(b);
            adj[b].push(a);
        }
    }
    let mut level = vec![usize::MAX; n];
    let mut parent_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut order: Vec<usize> = (0..n).collect();
    // Roots: the centre of each part (fewest hops to its farthest node, so
    // the drawing is as shallow as it can be), then most links; ties by
    // position in the graph (deterministic).
    let ecc: Vec<usize> = if n <= 500 {
        (0..n).map(|i| eccentricity(&adj, i)).collect()
    } else {
        vec![0; n]
    };
    order.sort_by_key(|&i| (ecc[i], std::cmp::Reverse(adj[i].len()), i));
    let mut rows: Vec<Vec<usize>> = Vec::new();
    for &root in &order {
        if level[root] != usize::MAX {
            continue;
        }
        level[root] = 0;
        let mut queue = std::collections::VecDeque::from([root]);
        while let Some(u) = queue.pop_front() {
            if rows.len() <= level[u] {
                rows.resize(level[u] + 1, Vec::new());
            }
            rows[level[u]].push(u);
            let mut next = adj[u].clone();
            next.sort_unstable();
            next.dedup();
            for v in next {
                if level[v] == usize::MAX {
                    level[v] = level[u] + 1;
                    queue.push_back(v);
                }
                if level[v] == level[u] + 1 {
                    parent_of[v].push(u);
                }
            }
        }
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let w = (widest as f64 * 130.0 + 2.0 * MARGIN).max(W);
    let h = (rows.len() as f64 * 100.0 + MARGIN).max(H);
    let mut pos = vec![(w / 2.0, h / 2.0); n];
    // One row: in the middle; more: spread from top to bottom.
    let row_y = |r: usize| match rows.len() {
        1 => h / 2.0,
        many => MARGIN - 20.0 + r as f64 * (h - 2.0 * MARGIN + 20.0) / (many - 1) as f64,
    };
    for (r, row) in rows.iter().enumerate() {
        // Order by the parents' mean x (the row above is placed already).
        let key = |i: usize| {
            let ps = &parent_of[i];
            if ps.is_empty() {
                f64::MAX
            } else {
                ps.iter().map(|&p| pos[p].0).sum::<f64>() / ps.len() as f64
            }
        };
        let mut keyed: Vec<(f64, usize)> = row.iter().map(|&i| (key(i), i)).collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let step = (w - 2.0 * MARGIN) / row.len() as f64;
        let y = row_y(r);
        for (k, &(_, i)) in keyed.iter().enumerate() {
            pos[i] = (MARGIN + step * (k as f64 + 0.5), y);
        }
    }
    (pos, w, h)
}

/// Hops from `from` to the farthest node it reaches.
fn eccentricity(adj: &[Vec<usize>], from: usize) -> usize {
    let mut dist = vec![usize::MAX; adj.len()];
    dist[from] = 0;
    let mut queue = std::collections::VecDeque::from([from]);
    let mut far = 0;
    while let Some(u) = queue.pop_front() {
        far = far.max(dist[u]);
        for &v in &adj[u] {
            if dist[v] == usize::MAX {
                dist[v] = dist[u] + 1;
                queue.push_back(v);
            }
        }
    }
    far
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
    let (pos, w, h) = layout(g.nodes.len(), &edges);
    let mut s = String::new();
    let faulty = g.nodes.iter().filter(|n| n.open_cases > 0).count();
    let _ = write!(
        s,
        r#"<svg class="topology" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" role="img" aria-labelledby="topo-title topo-desc"><title id="topo-title">Network topology</title><desc id="topo-desc">{} devices, {} links, {} with open cases: {}</desc>"#,
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
            w / 2.0,
            h / 2.0
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
    s.push_str(r##"<g font-size="10" fill="#3d4555" font-family="system-ui,sans-serif" stroke="#fafbfc" stroke-width="3" paint-order="stroke">"##);
    for (e, &(a, b)) in g.edges.iter().zip(edges.iter()) {
        let ((x1, y1), (x2, y2)) = (pos[a], pos[b]);
        let at = |t: f64| (x1 + (x2 - x1) * t, y1 + (y2 - y1) * t);
        let (lx, ly) = at(0.3);
        let (rx, ry) = at(0.7);
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
            r##"{open}<g class="node" data-node="{id}" data-open-cases="{oc}"><title>{label}{sep}{model}: {state}</title><circle cx="{x:.1}" cy="{y:.1}" r="16" fill="{fill}" stroke="#1d2330" stroke-width="1.5"/><text x="{x:.1}" y="{ty:.1}" text-anchor="middle" font-size="13" font-weight="600" fill="#1d2330" font-family="system-ui,sans-serif" stroke="#fafbfc" stroke-width="3" paint-order="stroke">{label}</text><text x="{x:.1}" y="{my:.1}" text-anchor="middle" font-size="10" fill="#5b6475" font-family="system-ui,sans-serif" stroke="#fafbfc" stroke-width="3" paint-order="stroke">{model}</text></g>{close}"##,
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
        let (pos, w, h) = layout(3, &[(0, 1), (1, 2)]);
        assert!(pos
            .iter()
            .all(|&(x, y)| (0.0..=w).contains(&x) && (0.0..=h).contains(&y)));
        // The best-connected node is on top, its neighbours one row down.
        assert!(pos[1].1 < pos[0].1 && pos[0].1 == pos[2].1);
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
