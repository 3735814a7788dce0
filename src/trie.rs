//! The memtable: a radix (compressed, Patricia) trie over byte keys.
//!
//! Keys are URIs (docs/ARCHITECTURE.md, "The path of one operation"). Besides point get / insert / remove the trie
//! answers, in time proportional to the prefix length plus the output:
//!
//! * [`Trie::count_prefix`]: how many keys start with a prefix;
//! * [`Trie::range`]: ordered iteration over the keys under a prefix from a
//!   lower bound;
//! * [`Trie::remove_prefix`]: raw-prefix removal (also the recursive
//!   slash-hierarchy removal, with the folder prefix `R/`);
//! * [`Trie::remove_children`]: non-recursive slash-hierarchy removal (the
//!   direct children of a folder).
//!
//! # Layout
//!
//! Every node owns its children inline in a `Vec<Node>` sorted by the first
//! byte of their labels, next to a `Vec<u8>` of those first bytes (a child is
//! found by scanning or bisecting that small array, not by touching sibling
//! nodes), and keeps the number of keys in its subtree. Labels of up to 22
//! bytes live inside the node (no allocation), longer ones on the heap. A leaf
//! allocates nothing but what its value does. Invariants, kept by every
//! operation:
//!
//! 1. the root's label is empty; every other node's label is non-empty;
//! 2. siblings have distinct first label bytes and are sorted by them;
//! 3. every non-root node holds a value or has at least two children (the trie
//!    stays compressed: no empty leaves, no one-child chains without values);
//! 4. `count` = (1 if the node holds a value) + the children's counts.
//!
//! Nothing here recurses on the trie's depth: a chain of 4096 one-byte labels
//! is legal, so descent, iteration, removal, cloning and dropping all use loops
//! and heap stacks.

use std::fmt;
use std::mem;
use std::ops::Deref;

use crate::frontcode::common_prefix;

/// Labels up to this many bytes are stored inside the node.
const INLINE_LABEL: usize = 22;

/// A detached subtree with more keys than this is freed on a background thread.
const BACKGROUND_DROP_KEYS: usize = 1024;

/// Fan-outs up to this size are searched linearly, larger ones by bisection.
const LINEAR_SEARCH_MAX: usize = 8;

/// An edge label: short ones inline (24 bytes in all, like a `Vec`), long ones boxed.
#[derive(Clone)]
enum Label {
    Inline { len: u8, bytes: [u8; INLINE_LABEL] },
    Heap(Box<[u8]>),
}

impl Label {
    const EMPTY: Label = Label::Inline { len: 0, bytes: [0; INLINE_LABEL] };

    fn new(bytes: &[u8]) -> Label {
        if bytes.len() <= INLINE_LABEL {
            let mut inline = [0; INLINE_LABEL];
            inline[..bytes.len()].copy_from_slice(bytes);
            // Fits: bytes.len() <= INLINE_LABEL < 256.
            Label::Inline { len: bytes.len() as u8, bytes: inline }
        } else {
            Label::Heap(bytes.into())
        }
    }

    fn concat(head: &[u8], tail: &[u8]) -> Label {
        let len = head.len() + tail.len();
        if len <= INLINE_LABEL {
            let mut inline = [0; INLINE_LABEL];
            inline[..head.len()].copy_from_slice(head);
            inline[head.len()..len].copy_from_slice(tail);
            Label::Inline { len: len as u8, bytes: inline }
        } else {
            let mut joined = Vec::with_capacity(len);
            joined.extend_from_slice(head);
            joined.extend_from_slice(tail);
            Label::Heap(joined.into_boxed_slice())
        }
    }

    /// First byte, the key siblings are sorted by; 0 for the (root or placeholder) empty label.
    #[inline]
    fn first_byte(&self) -> u8 {
        match self {
            Label::Inline { bytes, .. } => bytes[0],
            Label::Heap(bytes) => bytes.first().copied().unwrap_or(0),
        }
    }
}

impl Deref for Label {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            Label::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Label::Heap(bytes) => bytes,
        }
    }
}

struct Node<V> {
    label: Label,
    value: Option<V>,
    /// Keys in this subtree, this node's own value included.
    count: usize,
    children: Children<V>,
}

/// A node's children, sorted by the first byte of their labels, no two alike.
///
/// The first bytes are also kept apart in `firsts`, so that finding a child
/// reads one small array instead of one node (a cache line or more) per probe.
struct Children<V> {
    /// `firsts[i] == nodes[i].label.first_byte()`.
    firsts: Vec<u8>,
    nodes: Vec<Node<V>>,
}

impl<V> Default for Children<V> {
    fn default() -> Self {
        Children { firsts: Vec::new(), nodes: Vec::new() }
    }
}

impl<V> Deref for Children<V> {
    type Target = [Node<V>];

    #[inline]
    fn deref(&self) -> &[Node<V>] {
        &self.nodes
    }
}

impl<V> std::ops::DerefMut for Children<V> {
    /// Mutable access to the nodes; callers must not change a node's first
    /// label byte (they only swap in placeholders, removed before any search).
    #[inline]
    fn deref_mut(&mut self) -> &mut [Node<V>] {
        &mut self.nodes
    }
}

impl<V> Children<V> {
    fn with_one(node: Node<V>) -> Self {
        // Room for the sibling that an insert is about to add.
        let mut children = Children { firsts: Vec::with_capacity(2), nodes: Vec::with_capacity(2) };
        children.push(node);
        children
    }

    fn from_nodes(nodes: Vec<Node<V>>) -> Self {
        Children { firsts: nodes.iter().map(|node| node.label.first_byte()).collect(), nodes }
    }

    /// `Ok(index)` of the child whose label starts with `byte`, else `Err(insertion point)`.
    #[inline]
    fn find(&self, byte: u8) -> Result<usize, usize> {
        let firsts = &self.firsts[..];
        if firsts.len() <= LINEAR_SEARCH_MAX {
            match firsts.iter().position(|&first| first >= byte) {
                Some(i) if firsts[i] == byte => Ok(i),
                Some(i) => Err(i),
                None => Err(firsts.len()),
            }
        } else {
            firsts.binary_search(&byte)
        }
    }

    fn insert(&mut self, pos: usize, node: Node<V>) {
        self.firsts.insert(pos, node.label.first_byte());
        self.nodes.insert(pos, node);
    }

    /// Appends a node that sorts after every present one.
    fn push(&mut self, node: Node<V>) {
        self.firsts.push(node.label.first_byte());
        self.nodes.push(node);
    }

    fn remove(&mut self, idx: usize) -> Node<V> {
        self.firsts.remove(idx);
        self.nodes.remove(idx)
    }

    fn pop(&mut self) -> Option<Node<V>> {
        self.firsts.pop();
        self.nodes.pop()
    }

    /// Drops the placeholders (empty labels) left by `mem::take`.
    fn remove_placeholders(&mut self) {
        if self.nodes.iter().any(|node| node.label.is_empty()) {
            self.nodes.retain(|node| !node.label.is_empty());
            self.firsts.clear();
            self.firsts.extend(self.nodes.iter().map(|node| node.label.first_byte()));
        }
    }
}

impl<V> Default for Node<V> {
    /// An empty node: the root of an empty trie, or a placeholder left by `mem::take`.
    fn default() -> Self {
        Node { label: Label::EMPTY, value: None, count: 0, children: Children::default() }
    }
}

impl<V> Drop for Node<V> {
    fn drop(&mut self) {
        // The derived drop would recurse once per level and overflow small
        // stacks on deep chains; flatten the subtree into one heap stack.
        if self.children.is_empty() {
            return;
        }
        let mut stack = mem::take(&mut self.children.nodes);
        while let Some(mut node) = stack.pop() {
            stack.append(&mut node.children.nodes);
            // `node` drops here with no children left.
        }
    }
}

impl<V> Node<V> {
    fn leaf(label: &[u8], value: V) -> Self {
        Node { label: Label::new(label), value: Some(value), count: 1, children: Children::default() }
    }

    /// `Ok(index)` of the child whose label starts with `byte`, else `Err(insertion point)`.
    #[inline]
    fn child_index(&self, byte: u8) -> Result<usize, usize> {
        self.children.find(byte)
    }

    /// Splits this node's label after `at` bytes (0 < at < label length): this
    /// node keeps the head, loses its value, and gets one child holding the
    /// tail, the old value and the old children. Counts are unchanged.
    fn split(&mut self, at: usize) {
        let head = Label::new(&self.label[..at]);
        let tail = Label::new(&self.label[at..]);
        let lower =
            Node { label: tail, value: self.value.take(), count: self.count, children: mem::take(&mut self.children) };
        self.label = head;
        self.children = Children::with_one(lower);
    }

    /// Merges a valueless node with its only child (invariant 3). Counts are unchanged.
    fn absorb_only_child(&mut self) {
        debug_assert!(self.value.is_none() && self.children.len() == 1);
        if let Some(mut child) = self.children.pop() {
            self.label = Label::concat(&self.label, &child.label);
            self.value = child.value.take();
            self.children = mem::take(&mut child.children);
        }
    }

    /// Restores invariant 3 after the child at `idx` lost keys (its count is
    /// already adjusted): an empty valueless child goes away, and then a
    /// non-root valueless parent left with one child absorbs it; a valueless
    /// child with one child absorbs it.
    fn fix_child(&mut self, idx: usize, self_is_root: bool) {
        let child = &mut self.children[idx];
        if child.value.is_some() {
            return;
        }
        match child.children.len() {
            0 => {
                self.children.remove(idx);
                if !self_is_root && self.value.is_none() && self.children.len() == 1 {
                    self.absorb_only_child();
                }
            }
            1 => child.absorb_only_child(),
            _ => {}
        }
    }
}

/// A radix trie mapping byte keys to values, ordered by bytes.
///
/// See the module documentation for the node layout and its invariants.
pub struct Trie<V> {
    root: Node<V>,
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<V> Trie<V> {
    /// An empty trie. Does not allocate.
    pub fn new() -> Self {
        Trie { root: Node::default() }
    }

    /// Number of keys. O(1).
    pub fn len(&self) -> usize {
        self.root.count
    }

    /// True when the trie holds no key.
    pub fn is_empty(&self) -> bool {
        self.root.count == 0
    }

    /// The value stored under `key`. Does not allocate.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let mut node = &self.root;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let child = &node.children[node.child_index(first).ok()?];
            rest = rest.strip_prefix(&*child.label)?;
            node = child;
        }
        node.value.as_ref()
    }

    /// The value stored under `key`, mutably. Does not allocate.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let idx = node.child_index(first).ok()?;
            let child = &mut node.children[idx];
            rest = rest.strip_prefix(&*child.label)?;
            node = child;
        }
        node.value.as_mut()
    }

    /// Stores `value` under `key`, returning the value it replaces.
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        // One pass: every node on the key's path counts the key as new on the
        // way down; if the key turns out to be present, the counts are undone.
        let mut node = &mut self.root;
        let mut rest = key;
        loop {
            node.count += 1;
            let Some(&first) = rest.first() else { break };
            match node.child_index(first) {
                Err(pos) => {
                    node.children.insert(pos, Node::leaf(rest, value));
                    return None;
                }
                Ok(idx) => {
                    let child = &mut node.children[idx];
                    let common = common_prefix(&child.label, rest);
                    if common < child.label.len() {
                        // `common` >= 1: the first bytes match.
                        child.split(common);
                    }
                    rest = &rest[common..];
                    node = child;
                }
            }
        }
        let old = node.value.replace(value);
        if old.is_some() {
            // The key was present, so nothing was split: the path is intact.
            node.count -= 1;
            self.adjust_ancestors(key, false);
        }
        old
    }

    /// Removes `key`, returning its value. Merges or prunes nodes so that the
    /// trie stays compressed.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        if key.is_empty() {
            let old = self.root.value.take();
            if old.is_some() {
                self.root.count -= 1;
            }
            return old;
        }
        if self.root.count == 0 {
            return None;
        }
        // One pass, as in `insert`: every node whose path is a proper prefix of
        // the key counts the key as gone; undone below if it was absent. The
        // loop stands on the parent of the node it inspects, which is where
        // a removal has to restore compression.
        let mut parent = &mut self.root;
        let mut parent_is_root = true;
        let mut rest = key;
        loop {
            parent.count -= 1;
            let Some(&first) = rest.first() else { break };
            let Ok(idx) = parent.child_index(first) else { break };
            let Some(after) = rest.strip_prefix(&*parent.children[idx].label) else { break };
            if !after.is_empty() {
                rest = after;
                parent = &mut parent.children[idx];
                parent_is_root = false;
                continue;
            }
            let child = &mut parent.children[idx];
            let Some(old) = child.value.take() else { break };
            child.count -= 1;
            parent.fix_child(idx, parent_is_root);
            return Some(old);
        }
        self.adjust_ancestors(key, true);
        None
    }

    /// Number of keys that start with `prefix`. O(len(prefix)).
    pub fn count_prefix(&self, prefix: &[u8]) -> usize {
        self.seek_prefix(prefix, |_| {}).map_or(0, |(node, _)| node.count)
    }

    /// Ordered iteration, in byte order, over the keys that start with
    /// `prefix` and are `>= start`. Pass `start = prefix` (or `&[]`) to get
    /// everything under the prefix. Seeks in O(depth), then costs O(1)
    /// amortized per key plus the key bytes.
    pub fn range(&self, prefix: &[u8], start: &[u8]) -> Iter<'_, V> {
        let mut iter = Iter { stack: Vec::new(), key: Vec::new() };
        // Keys under `prefix` are `prefix + x`. A `start` at or before `prefix`
        // bounds nothing; one after it either extends it (a real bound) or is
        // past every key under it.
        let lower = if start <= prefix {
            prefix
        } else if start.starts_with(prefix) {
            start
        } else {
            return iter;
        };
        let Some((node, covered)) = self.seek_prefix(prefix, |_| {}) else {
            return iter;
        };
        iter.key.extend_from_slice(prefix);
        iter.key.extend_from_slice(&node.label[covered..]);
        iter.seek(node, lower, prefix.len());
        iter
    }

    /// Ordered iteration over every key.
    pub fn iter(&self) -> Iter<'_, V> {
        self.range(&[], &[])
    }

    /// Checks the structural invariants listed in the module documentation.
    /// For tests and fuzzers.
    ///
    /// # Errors
    ///
    /// A description of the first violation found.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        if !self.root.label.is_empty() {
            return Err("root label is not empty".into());
        }
        let mut stack = vec![(&self.root, true)];
        while let Some((node, is_root)) = stack.pop() {
            if !is_root {
                if node.label.is_empty() {
                    return Err("empty label below the root".into());
                }
                if node.value.is_none() && node.children.len() < 2 {
                    return Err(format!(
                        "valueless node {:?} with {} children",
                        node.label.escape_ascii().to_string(),
                        node.children.len()
                    ));
                }
            }
            let below: usize = node.children.iter().map(|c| c.count).sum();
            if node.count != below + usize::from(node.value.is_some()) {
                return Err(format!(
                    "node {:?} counts {} keys, holds {}",
                    node.label.escape_ascii().to_string(),
                    node.count,
                    below + usize::from(node.value.is_some())
                ));
            }
            if node.children.firsts.len() != node.children.len()
                || node.children.iter().zip(&node.children.firsts).any(|(c, &f)| c.label.first_byte() != f)
            {
                return Err(format!("first bytes of {:?} out of date", node.label.escape_ascii().to_string()));
            }
            for pair in node.children.windows(2) {
                if pair[0].label.first_byte() >= pair[1].label.first_byte() {
                    return Err(format!("children of {:?} not strictly sorted", node.label.escape_ascii().to_string()));
                }
            }
            stack.extend(node.children.iter().map(|c| (c, false)));
        }
        Ok(())
    }

    /// Finds the subtree of the keys that start with `prefix`: the node whose
    /// path is `prefix`, or the child whose label runs past the end of
    /// `prefix`. Returns it with the number of its label's bytes that
    /// `prefix` covers, and reports each child index taken to `step`. `None`
    /// when no key starts with `prefix` (the root is returned for `&[]`).
    fn seek_prefix(&self, prefix: &[u8], mut step: impl FnMut(usize)) -> Option<(&Node<V>, usize)> {
        let mut node = &self.root;
        let mut rest = prefix;
        while let Some(&first) = rest.first() {
            let idx = node.child_index(first).ok()?;
            step(idx);
            let child = &node.children[idx];
            if rest.len() <= child.label.len() {
                return child.label.starts_with(rest).then_some((child, rest.len()));
            }
            rest = rest.strip_prefix(&*child.label)?;
            node = child;
        }
        Some((node, node.label.len()))
    }

    /// Adds (`increment`) or subtracts one from the count of every node whose
    /// path is a proper prefix of `key`, stopping where the key leaves the trie.
    fn adjust_ancestors(&mut self, key: &[u8], increment: bool) {
        let mut node = &mut self.root;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            if increment {
                node.count += 1;
            } else {
                node.count -= 1;
            }
            let Ok(idx) = node.child_index(first) else { return };
            let child = &mut node.children[idx];
            let Some(after) = rest.strip_prefix(&*child.label) else { return };
            rest = after;
            node = child;
        }
    }

    /// Follows child indices from the root, subtracting `removed` from the
    /// count of every node passed (the last one included), and returns the last.
    fn descend_mut(&mut self, path: &[usize], removed: usize) -> &mut Node<V> {
        let mut node = &mut self.root;
        node.count -= removed;
        for &idx in path {
            node = &mut node.children[idx];
            node.count -= removed;
        }
        node
    }
}

impl<V: Send + 'static> Trie<V> {
    /// Raw-prefix removal: removes every key that starts with `prefix`
    /// (`prefix` itself included) and returns how many were removed. An empty
    /// prefix removes everything.
    ///
    /// Recursive removal of a folder is this with the folder prefix: root
    /// `a/b` is prefix `a/b/`, which leaves the key `a/b` itself.
    ///
    /// Costs O(len(prefix)) on the caller's thread: the subtree is detached
    /// whole, and one of more than 1024 keys is freed on a background thread.
    pub fn remove_prefix(&mut self, prefix: &[u8]) -> usize {
        let mut path = Vec::new();
        let Some((node, _)) = self.seek_prefix(prefix, |idx| path.push(idx)) else {
            return 0;
        };
        let removed = node.count;
        if removed == 0 {
            return 0;
        }
        // Every key below the located node starts with `prefix`, even when
        // `prefix` ends inside its label, so the node goes whole; no split.
        let detached = match path.split_last() {
            None => mem::take(&mut self.root),
            Some((&last, above)) => {
                let parent = self.descend_mut(above, removed);
                let detached = mem::take(&mut parent.children[last]);
                // The placeholder left behind is valueless and childless: pruned.
                parent.fix_child(last, above.is_empty());
                detached
            }
        };
        dispose(detached, removed);
        removed
    }

    /// Non-recursive folder removal: removes the keys `folder + x` where `x`
    /// holds no `/` (API.md's direct children, the key equal to `folder`
    /// included: its rest is empty), and returns how many were removed.
    /// `folder` is a folder prefix (empty, or ending in `/`); keys in its
    /// sub-folders stay.
    ///
    /// Costs O(len(folder)) plus the folder's direct children plus its
    /// sub-folders: a child edge holding a `/` is skipped, never entered.
    pub fn remove_children(&mut self, folder: &[u8]) -> usize {
        let mut path = Vec::new();
        let Some((node, covered)) = self.seek_prefix(folder, |idx| path.push(idx)) else {
            return 0;
        };
        // The located node's key is `folder + tail`.
        let tail = &node.label[covered..];
        if tail.contains(&b'/') {
            return 0;
        }
        let Some((&last, above)) = path.split_last() else {
            let (root, removed) = strip_direct_children(mem::take(&mut self.root), false);
            self.root = root;
            return removed;
        };
        let parent = self.descend_mut(above, 0);
        let (node, removed) = strip_direct_children(mem::take(&mut parent.children[last]), false);
        parent.children[last] = node;
        if removed > 0 {
            let parent = self.descend_mut(above, removed);
            parent.fix_child(last, above.is_empty());
        }
        removed
    }
}

/// Frees a detached subtree, on a background thread when it is big.
fn dispose<V: Send + 'static>(subtree: Node<V>, keys: usize) {
    if keys > BACKGROUND_DROP_KEYS {
        // If the thread cannot be spawned the closure, and the subtree with
        // it, is dropped right here: slower, still correct.
        let _ = std::thread::Builder::new().name("pushdex-trie-drop".into()).spawn(move || drop(subtree));
    } else {
        drop(subtree);
    }
}

/// Removes the value of `top` (unless `keep_value`) and the values of every
/// node below it reached through labels without a `/`; children whose label
/// holds a `/` are kept untouched. Nodes below `top` are pruned or merged to
/// keep invariant 3 and their counts fixed; `top` gets its count fixed but is
/// neither pruned nor merged (its parent's business). Returns `top` and the
/// number of values removed.
fn strip_direct_children<V>(top: Node<V>, keep_value: bool) -> (Node<V>, usize) {
    // Iterative post-order over owned nodes: a frame's node has its children
    // taken out one at a time (leaving placeholders) and put back when done.
    struct Frame<V> {
        node: Node<V>,
        next: usize,
        removed: usize,
    }
    let mut first = Frame { node: top, next: 0, removed: 0 };
    if !keep_value && first.node.value.take().is_some() {
        first.removed = 1;
    }
    let mut stack = vec![first];
    while let Some(frame) = stack.last_mut() {
        while frame.node.children.get(frame.next).is_some_and(|child| child.label.contains(&b'/')) {
            frame.next += 1;
        }
        if let Some(slot) = frame.node.children.get_mut(frame.next) {
            frame.next += 1;
            let mut node = mem::take(slot);
            let removed = usize::from(node.value.take().is_some());
            stack.push(Frame { node, next: 0, removed });
            continue;
        }
        let Some(mut done) = stack.pop() else { break };
        done.node.children.remove_placeholders();
        done.node.count -= done.removed;
        let Some(parent) = stack.last_mut() else {
            return (done.node, done.removed);
        };
        parent.removed += done.removed;
        if done.node.value.is_none() {
            match done.node.children.len() {
                // Leave the placeholder; the parent's `retain` drops it.
                0 => continue,
                1 => done.node.absorb_only_child(),
                _ => {}
            }
        }
        parent.node.children[parent.next - 1] = done.node;
    }
    // Not reached: the loop returns when it finishes the bottom frame.
    (Node::default(), 0)
}

impl<V: Clone> Clone for Trie<V> {
    fn clone(&self) -> Self {
        // Iterative post-order copy (a derived clone would recurse per level).
        struct Frame<'a, V> {
            src: &'a Node<V>,
            next: usize,
            children: Vec<Node<V>>,
        }
        fn frame<V>(src: &Node<V>) -> Frame<'_, V> {
            Frame { src, next: 0, children: Vec::with_capacity(src.children.len()) }
        }
        let mut stack = vec![frame(&self.root)];
        while let Some(top) = stack.last_mut() {
            if let Some(child) = top.src.children.get(top.next) {
                top.next += 1;
                stack.push(frame(child));
                continue;
            }
            let Some(done) = stack.pop() else { break };
            let node = Node {
                label: done.src.label.clone(),
                value: done.src.value.clone(),
                count: done.src.count,
                children: Children::from_nodes(done.children),
            };
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None => return Trie { root: node },
            }
        }
        // Not reached: the loop returns when it finishes the root.
        Trie::new()
    }
}

impl<V: fmt::Debug> fmt::Debug for Trie<V> {
    /// Formats as a map from escaped keys to values, in key order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Key(Vec<u8>);
        impl fmt::Debug for Key {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"{}\"", self.0.escape_ascii())
            }
        }
        f.debug_map().entries(self.iter().map(|(key, value)| (Key(key), value))).finish()
    }
}

impl<'a, V> IntoIterator for &'a Trie<V> {
    type Item = (Vec<u8>, &'a V);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

/// One node being walked by an [`Iter`].
struct Frame<'a, V> {
    node: &'a Node<V>,
    /// Index of the next child to enter.
    next: usize,
    /// Length of the node's path, the key buffer's length while at this node.
    key_len: usize,
    /// The node's own value is still to be yielded.
    value_pending: bool,
}

/// Ordered iterator over (a range of) a [`Trie`], from [`Trie::range`] or
/// [`Trie::iter`].
///
/// [`Iter::next_entry`] lends the key from an internal buffer and does not
/// allocate; [`Iterator::next`] copies it into a `Vec`.
pub struct Iter<'a, V> {
    /// Pre-order walk; the bottom frame is the subtree of the prefix, so the
    /// walk never leaves it.
    stack: Vec<Frame<'a, V>>,
    /// The current key; each frame's path is `key[..frame.key_len]`.
    key: Vec<u8>,
}

impl<'a, V> Iter<'a, V> {
    /// The next key and value. The key lives in an internal buffer until the
    /// next call; nothing is allocated once the buffer has grown to the
    /// longest key.
    pub fn next_entry(&mut self) -> Option<(&[u8], &'a V)> {
        loop {
            let frame = self.stack.last_mut()?;
            let node = frame.node;
            self.key.truncate(frame.key_len);
            if frame.value_pending {
                frame.value_pending = false;
                if let Some(value) = &node.value {
                    return Some((&self.key, value));
                }
            }
            let Some(child) = node.children.get(frame.next) else {
                self.stack.pop();
                continue;
            };
            frame.next += 1;
            self.key.extend_from_slice(&child.label);
            if child.children.is_empty() {
                // A leaf: yield it without a frame; the next call truncates
                // the key back to this frame's path.
                if let Some(value) = &child.value {
                    return Some((&self.key, value));
                }
                continue;
            }
            self.stack.push(Frame { node: child, next: 0, key_len: self.key.len(), value_pending: true });
        }
    }

    /// The key that [`Iter::next_entry`] returned last, until the next call
    /// (what it holds after a call that returned `None` means nothing).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Sets the walk to the keys of `node`'s subtree that are `>= lower`.
    /// `self.key` holds `node`'s path; it and `lower` agree on their first
    /// `matched` bytes.
    fn seek(&mut self, mut node: &'a Node<V>, lower: &[u8], mut matched: usize) {
        loop {
            let path_len = self.key.len();
            let common = matched + common_prefix(&self.key[matched..], &lower[matched..]);
            if common == lower.len() {
                // The path extends `lower` (or equals it): the whole subtree is >= lower.
                self.push_whole(node, path_len);
                return;
            }
            if common < path_len {
                // Path and bound differ inside the last label.
                if self.key[common] > lower[common] {
                    self.push_whole(node, path_len);
                }
                return;
            }
            // The path is a proper prefix of `lower`: the node's value and the
            // children before the bound's next byte are smaller.
            match node.child_index(lower[path_len]) {
                Err(pos) => {
                    self.stack.push(Frame { node, next: pos, key_len: path_len, value_pending: false });
                    return;
                }
                Ok(idx) => {
                    self.stack.push(Frame { node, next: idx + 1, key_len: path_len, value_pending: false });
                    node = &node.children[idx];
                    self.key.extend_from_slice(&node.label);
                    matched = path_len;
                }
            }
        }
    }

    fn push_whole(&mut self, node: &'a Node<V>, key_len: usize) {
        self.stack.push(Frame { node, next: 0, key_len, value_pending: true });
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (Vec<u8>, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        self.next_entry().map(|(key, value)| (key.to_vec(), value))
    }
}

impl<V> std::iter::FusedIterator for Iter<'_, V> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn trie(keys: &[&str]) -> Trie<usize> {
        let mut t = Trie::new();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(t.insert(key.as_bytes(), i), None, "{key}");
        }
        t.check_invariants().unwrap();
        t
    }

    fn keys(t: &Trie<usize>) -> Vec<String> {
        t.iter().map(|(k, _)| String::from_utf8(k).unwrap()).collect()
    }

    fn range(t: &Trie<usize>, prefix: &str, start: &str) -> Vec<String> {
        t.range(prefix.as_bytes(), start.as_bytes()).map(|(k, _)| String::from_utf8(k).unwrap()).collect()
    }

    /// Checks invariants, `len`, and the key list.
    fn expect(t: &Trie<usize>, want: &[&str]) {
        t.check_invariants().unwrap();
        assert_eq!(keys(t), want);
        assert_eq!(t.len(), want.len());
        assert_eq!(t.is_empty(), want.is_empty());
        assert_eq!(t.count_prefix(b""), want.len());
    }

    /// Runs `f` on a thread with a small stack, so that recursion on a deep
    /// chain would overflow.
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new().stack_size(256 * 1024).spawn(f).unwrap().join().unwrap();
    }

    #[test]
    fn label_is_compact() {
        assert_eq!(mem::size_of::<Label>(), 24);
        assert_eq!(&*Label::new(b"abc"), b"abc");
        let long = [7u8; 100];
        assert_eq!(&*Label::new(&long), &long[..]);
        assert_eq!(&*Label::concat(b"ab", b"cd"), b"abcd");
        assert_eq!(&*Label::concat(&long[..20], &long[..20]), &[7u8; 40][..]);
        assert_eq!(&*Label::concat(&long[..11], &long[..11]), &[7u8; 22][..]);
    }

    #[test]
    fn empty_trie() {
        let mut t: Trie<usize> = Trie::new();
        expect(&t, &[]);
        assert_eq!(t.get(b""), None);
        assert_eq!(t.get(b"a"), None);
        assert_eq!(t.remove(b""), None);
        assert_eq!(t.remove(b"a"), None);
        assert_eq!(t.count_prefix(b"a"), 0);
        assert_eq!(t.remove_prefix(b""), 0);
        assert_eq!(t.remove_prefix(b"a"), 0);
        assert_eq!(t.remove_children(b""), 0);
        assert_eq!(t.remove_children(b"a/"), 0);
        assert_eq!(range(&t, "", ""), Vec::<String>::new());
        expect(&t, &[]);
        assert_eq!(format!("{t:?}"), "{}");
    }

    #[test]
    fn empty_key() {
        let mut t = Trie::new();
        assert_eq!(t.insert(b"", 1), None);
        assert_eq!(t.insert(b"a", 2), None);
        assert_eq!(t.get(b""), Some(&1));
        assert_eq!(t.insert(b"", 3), Some(1));
        assert_eq!(t.len(), 2);
        assert_eq!(keys(&t), ["", "a"]);
        assert_eq!(t.count_prefix(b""), 2);
        assert_eq!(t.remove(b""), Some(3));
        assert_eq!(t.remove(b""), None);
        expect(&t, &["a"]);
        t.insert(b"", 4);
        // The empty key is a direct child of folder "" like "a": its rest
        // holds no '/'.
        assert_eq!(t.remove_children(b""), 2);
        expect(&t, &[]);
        t.insert(b"", 5);
        assert_eq!(t.remove_prefix(b""), 1);
        expect(&t, &[]);
    }

    #[test]
    fn insert_get_replace() {
        let mut t = trie(&["abc", "abd", "ab", "b", "abcdef"]);
        assert_eq!(t.get(b"abc"), Some(&0));
        assert_eq!(t.get(b"abd"), Some(&1));
        assert_eq!(t.get(b"ab"), Some(&2));
        assert_eq!(t.get(b"b"), Some(&3));
        assert_eq!(t.get(b"abcdef"), Some(&4));
        for absent in ["", "a", "abcd", "abcdefg", "abe", "c", "ba"] {
            assert_eq!(t.get(absent.as_bytes()), None, "{absent}");
        }
        assert_eq!(t.insert(b"abd", 10), Some(1));
        assert_eq!(t.insert(b"abcdef", 11), Some(4));
        assert_eq!(t.len(), 5);
        *t.get_mut(b"ab").unwrap() += 100;
        assert_eq!(t.get(b"ab"), Some(&102));
        assert_eq!(t.get_mut(b"abcd"), None);
        assert_eq!(t.get_mut(b"x"), None);
        expect(&t, &["ab", "abc", "abcdef", "abd", "b"]);
    }

    #[test]
    fn key_that_is_a_prefix_of_another() {
        // Longer first, then its prefix: the prefix lands inside an edge.
        let mut t = trie(&["abcdef", "abc"]);
        assert_eq!(t.get(b"abc"), Some(&1));
        assert_eq!(t.root.children.len(), 1);
        assert_eq!(&*t.root.children[0].label, b"abc");
        assert_eq!(&*t.root.children[0].children[0].label, b"def");
        expect(&t, &["abc", "abcdef"]);
        assert_eq!(t.remove(b"abc"), Some(1));
        // The now valueless "abc" merged back with "def".
        assert_eq!(&*t.root.children[0].label, b"abcdef");
        expect(&t, &["abcdef"]);
    }

    #[test]
    fn split_edge_on_insert() {
        let mut t = trie(&["romane", "romanus"]);
        assert_eq!(&*t.root.children[0].label, b"roman");
        assert!(t.root.children[0].value.is_none());
        t.insert(b"romulus", 2);
        t.insert(b"rubens", 3);
        t.insert(b"ruber", 4);
        t.insert(b"rubicon", 5);
        t.insert(b"rubicundus", 6);
        expect(&t, &["romane", "romanus", "romulus", "rubens", "ruber", "rubicon", "rubicundus"]);
        assert_eq!(&*t.root.children[0].label, b"r");
        assert_eq!(t.count_prefix(b"r"), 7);
        assert_eq!(t.count_prefix(b"rom"), 3);
        assert_eq!(t.count_prefix(b"rub"), 4);
        assert_eq!(t.count_prefix(b"rubic"), 2);
        assert_eq!(t.count_prefix(b"rubicu"), 1);
        assert_eq!(t.count_prefix(b"rubicundus"), 1);
        assert_eq!(t.count_prefix(b"rubicundusx"), 0);
        assert_eq!(t.count_prefix(b"rx"), 0);
        assert_eq!(t.count_prefix(b"x"), 0);
        assert_eq!(t.count_prefix(b""), 7);
    }

    #[test]
    fn long_labels_on_the_heap() {
        let long_a = "x".repeat(50) + "a";
        let long_b = "x".repeat(50) + "b";
        let longer = "x".repeat(30);
        let mut t = trie(&[long_a.as_str(), long_b.as_str(), longer.as_str()]);
        expect(&t, &[longer.as_str(), long_a.as_str(), long_b.as_str()]);
        assert_eq!(t.remove(long_a.as_bytes()), Some(0));
        assert_eq!(t.remove(longer.as_bytes()), Some(2));
        expect(&t, &[long_b.as_str()]);
        assert_eq!(&*t.root.children[0].label, long_b.as_bytes());
    }

    #[test]
    fn remove_merges_and_prunes() {
        let mut t = trie(&["a", "ab", "abc", "abd", "b"]);
        // Leaf removal, parent keeps its value.
        assert_eq!(t.remove(b"abd"), Some(3));
        expect(&t, &["a", "ab", "abc", "b"]);
        // A node with one child loses its value: merges with the child.
        assert_eq!(t.remove(b"ab"), Some(1));
        expect(&t, &["a", "abc", "b"]);
        assert_eq!(&*t.root.children[0].children[0].label, b"bc");
        // Absent keys: prefix of a label, inside an edge, past a leaf, unknown byte.
        for absent in ["ab", "abcd", "x", ""] {
            assert_eq!(t.remove(absent.as_bytes()), None);
            expect(&t, &["a", "abc", "b"]);
        }
        assert_eq!(t.remove(b"a"), Some(0));
        expect(&t, &["abc", "b"]);
        assert_eq!(t.remove(b"abc"), Some(2));
        assert_eq!(t.remove(b"b"), Some(4));
        expect(&t, &[]);
        assert!(t.root.children.is_empty());
    }

    #[test]
    fn remove_leaf_merges_valueless_parent() {
        // "ab" is a branching node without a value; removing one of its two
        // children leaves it with one: it absorbs the survivor.
        let mut t = trie(&["x", "abc", "abd"]);
        assert_eq!(t.remove(b"abc"), Some(1));
        expect(&t, &["abd", "x"]);
        assert_eq!(&*t.root.children[0].label, b"abd");
        // The root never merges, even valueless with one child.
        assert_eq!(t.remove(b"x"), Some(0));
        expect(&t, &["abd"]);
        assert!(t.root.label.is_empty());
    }

    const ENO: [&str; 5] =
        ["eno:bo:master", "eno:bo:masterpart", "eno:bo:masterpart:subpart1", "eno:bo:master:subpart2", "eno:bo:other"];

    #[test]
    fn remove_prefix_at_a_node() {
        let mut t = trie(&ENO);
        assert_eq!(t.remove_prefix(b"eno:bo:master"), 4);
        expect(&t, &["eno:bo:other"]);
    }

    #[test]
    fn remove_prefix_inside_an_edge() {
        let mut t = trie(&ENO);
        assert_eq!(t.remove_prefix(b"eno:bo:mast"), 4);
        expect(&t, &["eno:bo:other"]);
        let mut t = trie(&ENO);
        assert_eq!(t.remove_prefix(b"eno:bo:masterpart:"), 1);
        expect(&t, &["eno:bo:master", "eno:bo:master:subpart2", "eno:bo:masterpart", "eno:bo:other"]);
        assert_eq!(t.remove_prefix(b"eno:bo:masterp"), 1);
        expect(&t, &["eno:bo:master", "eno:bo:master:subpart2", "eno:bo:other"]);
        assert_eq!(t.remove_prefix(b"eno:bo:o"), 1);
        expect(&t, &["eno:bo:master", "eno:bo:master:subpart2"]);
        assert_eq!(t.remove_prefix(b"eno:bo:master:"), 1);
        expect(&t, &["eno:bo:master"]);
    }

    #[test]
    fn remove_prefix_equal_to_a_full_key() {
        let mut t = trie(&ENO);
        assert_eq!(t.remove_prefix(b"eno:bo:masterpart:subpart1"), 1);
        expect(&t, &["eno:bo:master", "eno:bo:master:subpart2", "eno:bo:masterpart", "eno:bo:other"]);
        assert_eq!(t.remove_prefix(b"eno:bo:other"), 1);
        expect(&t, &["eno:bo:master", "eno:bo:master:subpart2", "eno:bo:masterpart"]);
    }

    #[test]
    fn remove_prefix_absent() {
        let mut t = trie(&ENO);
        for absent in ["x", "eno:bo:mastex", "eno:bo:master:subpart2x", "eno:c", "eno:bo:masterpart:subpart10"] {
            assert_eq!(t.remove_prefix(absent.as_bytes()), 0, "{absent}");
        }
        assert_eq!(t.len(), 5);
        t.check_invariants().unwrap();
    }

    #[test]
    fn remove_prefix_empty_removes_all() {
        let mut t = trie(&ENO);
        t.insert(b"", 9);
        assert_eq!(t.remove_prefix(b""), 6);
        expect(&t, &[]);
        t.insert(b"z", 1);
        expect(&t, &["z"]);
    }

    #[test]
    fn recursive_folder_removal_is_remove_prefix_of_the_folder_prefix() {
        let mut t = trie(&["a/master", "a/master/x", "a/master/y/z", "a/masterpart", "a/master2/x"]);
        // Root "a/master" is prefix "a/master/".
        assert_eq!(t.remove_prefix(b"a/master/"), 2);
        expect(&t, &["a/master", "a/master2/x", "a/masterpart"]);
        // Root "" removes everything.
        assert_eq!(t.remove_prefix(b""), 3);
        expect(&t, &[]);
    }

    /// A value that counts its drops and remembers the threads they ran on.
    struct Tracked {
        drops: Arc<AtomicUsize>,
        threads: Arc<Mutex<Vec<std::thread::ThreadId>>>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
            let id = std::thread::current().id();
            let mut threads = self.threads.lock().unwrap();
            if !threads.contains(&id) {
                threads.push(id);
            }
        }
    }

    fn tracked_trie(
        n: usize,
        prefix: &str,
    ) -> (Trie<Tracked>, Arc<AtomicUsize>, Arc<Mutex<Vec<std::thread::ThreadId>>>) {
        let drops = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let mut t = Trie::new();
        for i in 0..n {
            let value = Tracked { drops: drops.clone(), threads: threads.clone() };
            t.insert(format!("{prefix}{i}").as_bytes(), value);
        }
        t.insert(b"keep", Tracked { drops: drops.clone(), threads: threads.clone() });
        (t, drops, threads)
    }

    fn wait_for(drops: &AtomicUsize, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while drops.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "subtree was never dropped");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn remove_prefix_big_subtree_drops_in_background() {
        let (mut t, drops, threads) = tracked_trie(5000, "big/");
        assert_eq!(t.count_prefix(b"big/"), 5000);
        assert_eq!(t.remove_prefix(b"big/"), 5000);
        assert_eq!(t.len(), 1);
        assert!(t.get(b"keep").is_some());
        t.check_invariants().unwrap();
        wait_for(&drops, 5000);
        let threads = threads.lock().unwrap();
        assert_eq!(threads.len(), 1);
        assert_ne!(threads[0], std::thread::current().id());
    }

    #[test]
    fn remove_prefix_small_subtree_drops_inline() {
        let (mut t, drops, threads) = tracked_trie(1000, "small/");
        assert_eq!(t.remove_prefix(b"small/"), 1000);
        assert_eq!(drops.load(Ordering::SeqCst), 1000);
        assert_eq!(*threads.lock().unwrap(), [std::thread::current().id()]);
        // Everything, background.
        let (mut t, drops, _) = tracked_trie(2000, "");
        assert_eq!(t.remove_prefix(b""), 2001);
        assert!(t.is_empty());
        wait_for(&drops, 2001);
    }

    #[test]
    fn remove_children_semantics() {
        let all = ["a", "a/", "a/b", "a/bc", "a/b/c", "a//b", "a//", "a/x/y/z", "ab", "b", "/usr", "/usr/x", "/", ""];
        // Folder "a/": direct children are "a/" (its rest is empty), "a/b"
        // and "a/bc"; the document "a" is not in it.
        let mut t = trie(&all);
        assert_eq!(t.remove_children(b"a/"), 3);
        expect(&t, &["", "/", "/usr", "/usr/x", "a", "a//", "a//b", "a/b/c", "a/x/y/z", "ab", "b"]);
        // Folder "a//" holds "a//" and "a//b".
        assert_eq!(t.remove_children(b"a//"), 2);
        expect(&t, &["", "/", "/usr", "/usr/x", "a", "a/b/c", "a/x/y/z", "ab", "b"]);
        // Folder "/" holds "/" and "/usr", while "/usr/x" is in sub-folder "/usr/".
        assert_eq!(t.remove_children(b"/"), 2);
        expect(&t, &["", "/usr/x", "a", "a/b/c", "a/x/y/z", "ab", "b"]);
        // Folder "": every key without '/'.
        assert_eq!(t.remove_children(b""), 4);
        expect(&t, &["/usr/x", "a/b/c", "a/x/y/z"]);
        assert_eq!(t.remove_children(b""), 0);
        assert_eq!(t.remove_children(b"a/x/"), 0);
        assert_eq!(t.remove_children(b"a/x/y/"), 1);
        expect(&t, &["/usr/x", "a/b/c"]);
        // Absent folders.
        assert_eq!(t.remove_children(b"q/"), 0);
        assert_eq!(t.remove_children(b"a/b/c/"), 0);
        expect(&t, &["/usr/x", "a/b/c"]);
    }

    #[test]
    fn remove_children_when_folder_ends_inside_an_edge() {
        // Folder "a/" ends inside the edge "a/x".
        let mut t = trie(&["a/xy", "a/xz", "b"]);
        assert_eq!(t.remove_children(b"a/"), 2);
        expect(&t, &["b"]);
        // The edge past the folder holds a '/': all in a sub-folder.
        let mut t = trie(&["a/x/1", "a/x/2", "b"]);
        assert_eq!(t.remove_children(b"a/"), 0);
        expect(&t, &["a/x/1", "a/x/2", "b"]);
        // Direct child on the edge, a deeper key below it stays and merges up.
        let mut t = trie(&["a/x", "a/x/1", "b"]);
        assert_eq!(t.remove_children(b"a/"), 1);
        expect(&t, &["a/x/1", "b"]);
        assert_eq!(&*t.root.children[0].label, b"a/x/1");
    }

    #[test]
    fn remove_children_keeps_subfolders_and_merges() {
        let mut t = trie(&["f/a", "f/ab", "f/abc", "f/ab/x", "f/ab/y", "f/b/z", "f/c", "g"]);
        assert_eq!(t.remove_children(b"f/"), 4);
        expect(&t, &["f/ab/x", "f/ab/y", "f/b/z", "g"]);
        assert_eq!(t.count_prefix(b"f/"), 3);
        assert_eq!(t.count_prefix(b"f/ab"), 2);
        assert_eq!(t.remove_children(b"f/ab/"), 2);
        expect(&t, &["f/b/z", "g"]);
        assert_eq!(t.remove_children(b"f/b/"), 1);
        expect(&t, &["g"]);
    }

    #[test]
    fn remove_children_prunes_the_folder_node() {
        // "d/" is a valueless branching node: removing its children empties it.
        let mut t = trie(&["d/1", "d/2", "e"]);
        assert_eq!(t.remove_children(b"d/"), 2);
        expect(&t, &["e"]);
        // Same, below a valueless parent that must then merge.
        let mut t = trie(&["p/d/1", "p/d/2", "p/e/1"]);
        assert_eq!(t.remove_children(b"p/d/"), 2);
        expect(&t, &["p/e/1"]);
        assert_eq!(&*t.root.children[0].label, b"p/e/1");
        // The folder key itself is a direct child; its sub-folder stays.
        let mut t = trie(&["d/", "d/1", "d/2", "d/s/1"]);
        assert_eq!(t.remove_children(b"d/"), 3);
        expect(&t, &["d/s/1"]);
    }

    #[test]
    fn range_bounds() {
        let t = trie(&["a", "ab", "abc", "abd", "abdx", "ac", "b", "ba"]);
        assert_eq!(range(&t, "", ""), keys(&t));
        assert_eq!(range(&t, "ab", ""), ["ab", "abc", "abd", "abdx"]);
        assert_eq!(range(&t, "ab", "ab"), ["ab", "abc", "abd", "abdx"]);
        assert_eq!(range(&t, "ab", "abc"), ["abc", "abd", "abdx"]);
        assert_eq!(range(&t, "ab", "abca"), ["abd", "abdx"]);
        assert_eq!(range(&t, "ab", "abd"), ["abd", "abdx"]);
        assert_eq!(range(&t, "ab", "abdy"), Vec::<String>::new());
        // Start before the prefix: everything under the prefix.
        assert_eq!(range(&t, "ab", "a"), ["ab", "abc", "abd", "abdx"]);
        assert_eq!(range(&t, "ab", "aa"), ["ab", "abc", "abd", "abdx"]);
        // Start after everything under the prefix.
        assert_eq!(range(&t, "ab", "ac"), Vec::<String>::new());
        assert_eq!(range(&t, "ab", "b"), Vec::<String>::new());
        assert_eq!(range(&t, "", "bb"), Vec::<String>::new());
        assert_eq!(range(&t, "", "ba"), ["ba"]);
        assert_eq!(range(&t, "", "az"), ["b", "ba"]);
        // Absent prefix.
        assert_eq!(range(&t, "abe", ""), Vec::<String>::new());
        assert_eq!(range(&t, "z", ""), Vec::<String>::new());
    }

    #[test]
    fn range_with_start_inside_an_edge() {
        let t = trie(&["file:///share/doc1", "file:///share/doc2", "file:///shared", "file:///x"]);
        // The prefix ends inside the edge "file:///".
        assert_eq!(range(&t, "file:///sh", ""), ["file:///share/doc1", "file:///share/doc2", "file:///shared"]);
        // Start inside the edge "share", before and after it.
        assert_eq!(
            range(&t, "file:///", "file:///sha"),
            ["file:///share/doc1", "file:///share/doc2", "file:///shared", "file:///x"]
        );
        assert_eq!(range(&t, "file:///", "file:///shb"), ["file:///x"]);
        assert_eq!(range(&t, "file:///", "file:///share/doc1x"), ["file:///share/doc2", "file:///shared", "file:///x"]);
        assert_eq!(
            range(&t, "file:///share", "file:///share/"),
            ["file:///share/doc1", "file:///share/doc2", "file:///shared"]
        );
        assert_eq!(range(&t, "file:///share", "file:///share0"), ["file:///shared"]);
        assert_eq!(range(&t, "file:///share/", "file:///share/doc"), ["file:///share/doc1", "file:///share/doc2"]);
        assert_eq!(range(&t, "file:///share/doc", "file:///share/doc2"), ["file:///share/doc2"]);
        assert_eq!(range(&t, "file:///share/doc2", "file:///share/doc2"), ["file:///share/doc2"]);
        assert_eq!(range(&t, "file:///share/doc2", "file:///share/doc3"), Vec::<String>::new());
        assert_eq!(range(&t, "file:///shar", "file:///sharf"), Vec::<String>::new());
    }

    #[test]
    fn next_entry_lends_the_key() {
        let t = trie(&["k1", "k2", "k10"]);
        let mut it = t.range(b"k", b"");
        let mut seen = Vec::new();
        while let Some((key, value)) = it.next_entry() {
            seen.push((key.to_vec(), *value));
        }
        assert_eq!(seen, [(b"k1".to_vec(), 0), (b"k10".to_vec(), 2), (b"k2".to_vec(), 1)]);
        assert!(it.next_entry().is_none());
        assert!(it.next().is_none());
    }

    #[test]
    fn counts_stay_right_after_every_removal() {
        let words = [
            "", "/", "/a", "a", "a/", "a/b", "a/b/", "a/b/c", "a/bb", "a/bb/c", "a:b", "ab", "ab/c", "b", "b//", "b//c",
        ];
        type Op = fn(&mut Trie<usize>, &str) -> usize;
        let ops: [(&str, Op); 4] = [
            ("remove", |t, k| usize::from(t.remove(k.as_bytes()).is_some())),
            ("remove_prefix", |t, k| t.remove_prefix(k.as_bytes())),
            ("remove_children", |t, k| {
                let folder = if k.is_empty() || k.ends_with('/') { k.to_string() } else { format!("{k}/") };
                t.remove_children(folder.as_bytes())
            }),
            ("insert", |t, k| usize::from(t.insert(k.as_bytes(), 0).is_none())),
        ];
        for (name, op) in ops {
            for arg in words {
                let mut t = trie(&words[..]);
                let before = t.len();
                let changed = op(&mut t, arg);
                t.check_invariants().unwrap_or_else(|e| panic!("{name}({arg:?}): {e}"));
                let listed = keys(&t);
                assert_eq!(t.len(), listed.len());
                if name == "insert" {
                    assert_eq!(before + changed, t.len());
                } else {
                    assert_eq!(before - changed, t.len(), "{name}({arg:?})");
                }
                for p in words {
                    let want = listed.iter().filter(|k| k.starts_with(p)).count();
                    assert_eq!(t.count_prefix(p.as_bytes()), want, "{name}({arg:?}) then count_prefix({p:?})");
                }
            }
        }
    }

    #[test]
    fn deep_chain_does_not_recurse() {
        on_small_stack(|| {
            let mut t = Trie::new();
            let max = 4096;
            for n in 1..=max {
                t.insert("a".repeat(n).as_bytes(), n);
            }
            t.check_invariants().unwrap();
            assert_eq!(t.len(), max);
            assert_eq!(t.get("a".repeat(max).as_bytes()), Some(&max));
            assert_eq!(t.count_prefix("a".repeat(4000).as_bytes()), 97);
            assert_eq!(t.iter().count(), max);
            assert_eq!(t.range(b"", "a".repeat(4090).as_bytes()).count(), 7);
            let copy = t.clone();
            assert_eq!(copy.len(), max);
            drop(copy);
            let _ = format!("{t:?}");
            // Non-recursive removal in folder "" walks the whole chain.
            let mut u = t.clone();
            assert_eq!(u.remove_children(b""), max);
            assert!(u.is_empty());
            // Removing from the bottom and the middle.
            assert_eq!(t.remove("a".repeat(max).as_bytes()), Some(max));
            assert_eq!(t.remove("a".repeat(2000).as_bytes()), Some(2000));
            t.check_invariants().unwrap();
            assert_eq!(t.remove_prefix("a".repeat(3000).as_bytes()), 1096);
            assert_eq!(t.len(), 2999 - 1);
            // Dropping the trie drops the remaining chain.
            drop(t);
            // A chain detached by remove_prefix (background drop too).
            let mut t = Trie::new();
            for n in 1..=max {
                t.insert("b".repeat(n).as_bytes(), n);
            }
            t.insert(b"c", 0);
            assert_eq!(t.remove_prefix(b"b"), max);
            assert_eq!(t.len(), 1);
        });
    }

    #[test]
    fn deep_chain_of_folders() {
        on_small_stack(|| {
            let mut t = Trie::new();
            let mut key = Vec::new();
            for n in 0..2048 {
                key.extend_from_slice(b"d/");
                t.insert(&key, n);
            }
            assert_eq!(t.len(), 2048);
            // Folder "d/" holds one direct child, the key "d/" itself (its
            // rest is empty); "d/d/" is a sub-folder.
            assert_eq!(t.remove_children(b"d/"), 1);
            assert_eq!(t.len(), 2047);
            assert_eq!(t.remove_prefix(b"d/d/d/"), 2046);
            assert_eq!(t.len(), 1);
            t.check_invariants().unwrap();
        });
    }

    #[test]
    fn clone_and_debug() {
        let t = trie(&["b", "a\n", "ab"]);
        let u = t.clone();
        assert_eq!(keys(&u), keys(&t));
        u.check_invariants().unwrap();
        assert_eq!(format!("{t:?}"), r#"{"a\n": 1, "ab": 2, "b": 0}"#);
        let d: Trie<u8> = Trie::default();
        assert!(d.is_empty());
        let via_into_iter: Vec<_> = (&t).into_iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(via_into_iter.len(), 3);
    }

    #[test]
    fn many_keys_wide_fanout() {
        let mut t = Trie::new();
        let mut model = std::collections::BTreeMap::new();
        for i in 0u32..20_000 {
            let key = format!("file:///share/{}/doc{}.txt", i % 37, i.wrapping_mul(2_654_435_761) % 10_007);
            let old = t.insert(key.as_bytes(), i);
            assert_eq!(old, model.insert(key.into_bytes(), i));
        }
        t.check_invariants().unwrap();
        assert_eq!(t.len(), model.len());
        assert!(t.iter().map(|(k, v)| (k, *v)).eq(model.iter().map(|(k, v)| (k.clone(), *v))));
        for i in (0u32..20_000).step_by(3) {
            let key = format!("file:///share/{}/doc{}.txt", i % 37, i % 10_007);
            assert_eq!(t.remove(key.as_bytes()), model.remove(key.as_bytes()));
        }
        t.check_invariants().unwrap();
        assert!(t.iter().map(|(k, v)| (k, *v)).eq(model.iter().map(|(k, v)| (k.clone(), *v))));
    }
}
