#pragma once

// A YAML document as a read-only tree with source marks, parsed by libyaml (Debian's
// libyaml-dev). The loader walks it; nothing else sees YAML. Why not yaml-cpp: its scanner
// read about 4 MB/s here, which made loading 10,000 services take seconds (docs/design.md,
// "YAML parsing").

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace veer::yaml {

enum class NodeType { kUndefined, kNull, kScalar, kSequence, kMap };

/**
 * How deep sequences and maps may nest. A Kubernetes object nests about 15 levels (an
 * HTTPRoute's header match inside a List); past this the text is hostile, and libyaml's
 * scanner does work proportional to the open flow collections for every token it reads
 * (200 KB of "[" took 27.7 s), so parse() stops as soon as the limit is crossed.
 */
inline constexpr size_t kMaxDepth = 64;

/**
 * How many nodes aliases may add to a document beyond its own: an alias is a reference,
 * but the loader copies what it reads, so "billion laughs" (anchors of aliases of
 * anchors) would grow exponentially in memory there.
 */
inline constexpr size_t kMaxAliasNodes = 100000;

/** 0-based line and column of a node's first character. */
struct Mark {
  int line = -1;
  int column = -1;
  bool isNull() const { return line < 0; }
};

struct NodeData;

/**
 * A node of a Document: a cheap handle, valid while its Document lives. A default Node is
 * undefined (a key that is not there).
 */
class Node {
public:
  Node() = default;
  explicit Node(const NodeData* d) : d_(d) {}

  NodeType type() const;
  bool isDefined() const { return d_ != nullptr; }
  bool isNull() const { return type() == NodeType::kNull; }
  bool isScalar() const { return type() == NodeType::kScalar; }
  bool isSequence() const { return type() == NodeType::kSequence; }
  bool isMap() const { return type() == NodeType::kMap; }
  /** The text of a scalar ("" for any other node), NUL-terminated. */
  std::string_view scalar() const;
  Mark mark() const;
  /** A sequence's items (empty for any other node). */
  std::span<const Node> items() const;
  /** A map's entries in file order, duplicate keys included (empty for any other node). */
  std::span<const std::pair<Node, Node>> entries() const;

private:
  const NodeData* d_ = nullptr;
};

/** Trivially destructible: a Document's arena holds the nodes, texts and child arrays. */
struct NodeData {
  NodeType type = NodeType::kNull;
  Mark mark;
  uint32_t size = 0;          // a scalar's length, a sequence's items, a map's entries
  const char* text = "";      // a scalar's text
  const void* kids = nullptr; // Node[size] (sequence) or std::pair<Node, Node>[size] (map)
};

// Asked for every node the loader reads: inline.
inline NodeType Node::type() const {
  return d_ == nullptr ? NodeType::kUndefined : d_->type;
}
inline Mark Node::mark() const {
  return d_ == nullptr ? Mark{} : d_->mark;
}
inline std::string_view Node::scalar() const {
  return d_ != nullptr && d_->type == NodeType::kScalar ? std::string_view(d_->text, d_->size)
                                                        : std::string_view();
}
inline std::span<const Node> Node::items() const {
  if (d_ == nullptr || d_->type != NodeType::kSequence) {
    return {};
  }
  return {static_cast<const Node*>(d_->kids), d_->size};
}
inline std::span<const std::pair<Node, Node>> Node::entries() const {
  if (d_ == nullptr || d_->type != NodeType::kMap) {
    return {};
  }
  return {static_cast<const std::pair<Node, Node>*>(d_->kids), d_->size};
}

/**
 * A parsed document: owns its nodes, all in one arena (a few blocks for a Kubernetes
 * object, where a vector and a string per node cost an allocation each). Not copyable
 * (nodes point into it).
 */
class Document {
public:
  Document() = default;
  Document(const Document&) = delete;
  Document& operator=(const Document&) = delete;

  Node root() const { return root_; }

private:
  friend struct Parser;
  std::pmr::monotonic_buffer_resource arena_{4096}; // first block; each next one larger
  Node root_;
};

/**
 * Why a text is not YAML: libyaml's problem and where it found it, and the construct it
 * was in ("while parsing a flow sequence") and where that began: often the real slip.
 * Marks count from the start of the text.
 */
struct ParseError {
  std::string message;
  Mark mark;
  std::string context; // "" when libyaml gives none
  Mark contextMark;
};

/**
 * Parses text holding at most one document (the loader splits streams itself). False with
 * error set when libyaml rejects it, or when nesting passes kMaxDepth or aliases expand
 * past kMaxAliasNodes (at the node that crossed the limit). An empty text is a null root. Plain
 * scalars "", "~", "null", "Null" and "NULL" are null; tags are ignored (a scalar keeps its text);
 * aliases refer to their anchor's node.
 */
bool parse(std::string_view text, Document& doc, ParseError& error);

} // namespace veer::yaml
