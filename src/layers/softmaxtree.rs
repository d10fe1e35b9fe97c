//! Port of softmaxtree.cu / softmaxtree.cuh (2012): `SoftmaxTree`, the label tree of
//! the `treefc` layer, and its kernels `kSoftmaxTreeFwd` (effective weights: each
//! node's weight vector plus its ancestors'), `kSoftmaxTreeBwd` (an inner node's
//! gradient: the sum of its children's) and `kSoftmaxTreeUpdateWeights` (the update,
//! with rate and decay divided by the node's leaf count).
//!
//! Matrices are `(numNodes, numFeatures)` row-major, row = node label (the `treefc`
//! weights are the column-major `(numFeatures, numNodes)` view of that memory). Each
//! output element is one thread's sequence in the original. Tier: exact (the update's
//! divisions are IEEE; `grad - wc*w` and `mom*inc + eps*t` are the FFMAs of the
//! sm_75 machine code).

/// `levels[at]`, created (empty) if missing.
fn level<T>(levels: &mut Vec<Vec<T>>, at: usize) -> &mut Vec<T> {
    if levels.len() <= at {
        levels.resize_with(at + 1, Vec::new);
    }
    &mut levels[at]
}

/// The tree after `finalize()`: nodes by depth and by height, the leaf counts.
#[derive(Clone, Debug)]
pub struct SoftmaxTree {
    /// `_nodeDepths` / `_nodeFwdMeta`: per depth from 0, (label, parent label).
    by_depth: Vec<Vec<(usize, usize)>>,
    /// `_nodeHeights` / `_nodeBwdMeta`, `_nodeChildMeta`: per height from 1, (label,
    /// children labels).
    by_height: Vec<Vec<(usize, Vec<usize>)>>,
    /// `_nodeSizes`: the number of leaves under each label.
    sizes: Vec<u16>,
    num_leaves: usize,
}

impl SoftmaxTree {
    /// `SoftmaxTree(rootLabel)`, `TreeFCLayer::makeTree` over `tree` (`tree[label]` =
    /// the children's labels, the `tree` of `batches.meta`) and `finalize()`. Where
    /// the original would read past its lists or arrays (a label without an entry, a
    /// label not below the node count, a cycle) this fails.
    pub fn new(tree: &[Vec<usize>], root: usize) -> Result<SoftmaxTree, String> {
        struct Node {
            label: usize,
            depth: usize,
            parent: Option<usize>,
            children: Vec<usize>,
        }
        let mut nodes: Vec<Node> = Vec::new();
        // makeTree, depth first in list order.
        fn make(
            tree: &[Vec<usize>],
            nodes: &mut Vec<Node>,
            label: usize,
            parent: Option<usize>,
        ) -> Result<usize, String> {
            let kids = tree
                .get(label)
                .ok_or_else(|| format!("tree: label {label} has no entry"))?;
            if nodes.len() > tree.len() {
                return Err("tree: more nodes than labels (a cycle?)".into());
            }
            let me = nodes.len();
            let depth = parent.map_or(0, |p| nodes[p].depth + 1);
            nodes.push(Node {
                label,
                depth,
                parent,
                children: Vec::new(),
            });
            for &k in kids {
                let c = make(tree, nodes, k, Some(me))?;
                nodes[me].children.push(c);
            }
            Ok(me)
        }
        make(tree, &mut nodes, root, None)?;
        let n = nodes.len();
        if let Some(bad) = nodes.iter().find(|x| x.label >= n) {
            return Err(format!(
                "tree: label {} is not below the node count {n}",
                bad.label
            ));
        }
        // setDistances (post-order: children first), setNodeCounts, setSizes.
        let mut by_depth: Vec<Vec<(usize, usize)>> = Vec::new();
        let mut by_height: Vec<Vec<(usize, Vec<usize>)>> = Vec::new();
        let mut sizes = vec![0u16; n];
        fn visit(
            nodes: &[Node],
            i: usize,
            by_depth: &mut Vec<Vec<(usize, usize)>>,
            by_height: &mut Vec<Vec<(usize, Vec<usize>)>>,
            sizes: &mut [u16],
        ) -> (usize, usize) {
            let (mut height, mut size) = (0, nodes[i].children.is_empty() as usize);
            for &c in &nodes[i].children {
                let (h, s) = visit(nodes, c, by_depth, by_height, sizes);
                height = height.max(h);
                size += s;
            }
            height += !nodes[i].children.is_empty() as usize;
            let node = &nodes[i];
            let kids = node.children.iter().map(|&c| nodes[c].label).collect();
            level(by_height, height).push((node.label, kids));
            let parent = node.parent.map_or(0, |p| nodes[p].label);
            level(by_depth, node.depth).push((node.label, parent));
            sizes[node.label] = size as u16;
            (height, size)
        }
        visit(&nodes, 0, &mut by_depth, &mut by_height, &mut sizes);
        let num_leaves = nodes.iter().filter(|x| x.children.is_empty()).count();
        by_height.remove(0);
        Ok(SoftmaxTree {
            by_depth,
            by_height,
            sizes,
            num_leaves,
        })
    }

    pub fn num_nodes(&self) -> usize {
        self.sizes.len()
    }

    pub fn num_leaves(&self) -> usize {
        self.num_leaves
    }

    fn check(&self, function: &str, m: &[f32], num_features: usize) -> Result<(), String> {
        if m.len() != self.num_nodes() * num_features {
            return Err(format!(
                "{function}: the matrix is not (numNodes = {}, numFeatures = {num_features})",
                self.num_nodes()
            ));
        }
        Ok(())
    }

    /// `makeWeights(offsets, targets)` (`kSoftmaxTreeFwd`, depth by depth): `targets[root]
    /// = offsets[root]`, `targets[node] = targets[parent] + offsets[node]`.
    pub fn make_weights(
        &self,
        offsets: &[f32],
        targets: &mut [f32],
        num_features: usize,
    ) -> Result<(), String> {
        self.check("makeWeights", offsets, num_features)?;
        self.check("makeWeights", targets, num_features)?;
        let nf = num_features;
        for (d, level) in self.by_depth.iter().enumerate() {
            for &(node, parent) in level {
                for f in 0..nf {
                    let w = offsets[node * nf + f];
                    targets[node * nf + f] = if d == 0 {
                        w
                    } else {
                        targets[parent * nf + f] + w
                    };
                }
            }
        }
        Ok(())
    }

    /// `distributeGradients(grads)` (`kSoftmaxTreeBwd`, height by height from 1): each
    /// inner node's row becomes the sum of its children's, from 0 in child order.
    pub fn distribute_gradients(
        &self,
        grads: &mut [f32],
        num_features: usize,
    ) -> Result<(), String> {
        self.check("distributeGradients", grads, num_features)?;
        let nf = num_features;
        for level in &self.by_height {
            for (node, kids) in level {
                for f in 0..nf {
                    let g = kids.iter().fold(0f32, |s, &c| s + grads[c * nf + f]);
                    grads[node * nf + f] = g;
                }
            }
        }
        Ok(())
    }

    /// `updateWeights(weights, incs, grads, epsWBase, mom, wcBase)`
    /// (`kSoftmaxTreeUpdateWeights`): for node `i` with `n` leaves, `eps = epsWBase/n`,
    /// `wc = wcBase/n` (IEEE divisions), `inc = mom*inc + eps*(grad - wc*w)`, `w += inc`.
    #[allow(clippy::too_many_arguments)]
    pub fn update_weights(
        &self,
        weights: &mut [f32],
        incs: &mut [f32],
        grads: &[f32],
        num_features: usize,
        eps_w_base: f32,
        mom: f32,
        wc_base: f32,
    ) -> Result<(), String> {
        for m in [&*weights, &*incs, grads] {
            self.check("updateWeights", m, num_features)?;
        }
        let nf = num_features;
        for (node, &size) in self.sizes.iter().enumerate() {
            let (wc, eps) = (wc_base / size as f32, eps_w_base / size as f32);
            for k in node * nf..(node + 1) * nf {
                let t = weights[k].mul_add(-wc, grads[k]);
                let inc = incs[k].mul_add(mom, eps * t);
                incs[k] = inc;
                weights[k] += inc;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaves 0..3, inner nodes 4 (over 0, 1), 5 (over 2, 3), root 6 (over 4, 5).
    fn tree() -> Vec<Vec<usize>> {
        vec![
            vec![],
            vec![],
            vec![],
            vec![],
            vec![0, 1],
            vec![2, 3],
            vec![4, 5],
        ]
    }

    #[test]
    fn paths_sums_and_sizes() {
        let t = SoftmaxTree::new(&tree(), 6).unwrap();
        assert_eq!((t.num_nodes(), t.num_leaves()), (7, 4));
        assert_eq!(t.sizes, vec![1, 1, 1, 1, 2, 2, 4]);
        let w: Vec<f32> = (0..7).map(|i| i as f32).collect();
        let mut eff = vec![0.0; 7];
        t.make_weights(&w, &mut eff, 1).unwrap();
        assert_eq!(eff, vec![10.0, 11.0, 13.0, 14.0, 10.0, 11.0, 6.0]);
        let mut g = vec![1.0, 2.0, 3.0, 4.0, 9.0, 9.0, 9.0];
        t.distribute_gradients(&mut g, 1).unwrap();
        assert_eq!(&g[4..], &[3.0, 7.0, 10.0]);
        assert!(SoftmaxTree::new(&tree(), 7).is_err());
        assert!(SoftmaxTree::new(&[vec![0]], 0).is_err());
    }
}
