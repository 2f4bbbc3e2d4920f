// libyaml events -> a Document tree. Iterative (an explicit stack), so nesting depth costs
// heap, not stack.

#include "config/yaml.h"

#include <yaml.h>

#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace veer::yaml {

namespace {

Mark markOf(const yaml_mark_t& m) {
  return Mark{static_cast<int>(m.line), static_cast<int>(m.column)};
}

bool isNullScalar(const yaml_event_t& e) {
  if (e.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return false;
  }
  std::string_view v(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
  return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL";
}

/** Frees a libyaml parser however parsing ends. */
struct ParserGuard {
  yaml_parser_t p;
  ParserGuard() { yaml_parser_initialize(&p); }
  ~ParserGuard() { yaml_parser_delete(&p); }
};

/** Frees one event however the loop body leaves. */
struct EventGuard {
  yaml_event_t e;
  ~EventGuard() { yaml_event_delete(&e); }
};

} // namespace

struct Parser {
  /** An open sequence or map: its node and where its children start on the scratch stacks. */
  struct Open {
    NodeData* node;
    size_t first;          // index into items or entries
    bool keyNext;          // a map's next node is a key
    std::string anchor;    // named once the collection is complete
    size_t expandedBefore; // run()'s count before it opened: its subtree is the difference
  };

  /** A named node and how many nodes it stands for, aliases within it expanded. */
  struct Anchor {
    const NodeData* node;
    size_t expanded;
  };

  template <class T> static T* copyOut(Document& doc, const T* from, size_t n) {
    if (n == 0) {
      return nullptr;
    }
    void* mem = doc.arena_.allocate(n * sizeof(T), alignof(T));
    return std::uninitialized_copy(from, from + n, static_cast<T*>(mem)) - n;
  }

  /** Adds a node to its parent (the open sequence or map), or makes it the root. */
  static void attach(Document& doc, std::vector<Open>& open, std::vector<Node>& items,
                     std::vector<std::pair<Node, Node>>& entries, Node n) {
    if (open.empty()) {
      doc.root_ = n;
      return;
    }
    Open& parent = open.back();
    if (parent.node->type == NodeType::kSequence) {
      items.push_back(n);
    } else if (parent.keyNext) {
      entries.emplace_back(n, Node());
      parent.keyNext = false;
    } else {
      entries.back().second = n;
      parent.keyNext = true;
    }
  }

  static NodeData* newNode(Document& doc) {
    return new (doc.arena_.allocate(sizeof(NodeData), alignof(NodeData))) NodeData;
  }

  static bool run(std::string_view text, Document& doc, ParseError& error) {
    ParserGuard guard;
    yaml_parser_set_input_string(&guard.p, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
    // Children of the open collections, innermost last: copied into the arena, at their
    // final size, when their collection ends.
    std::vector<Open> open;
    std::vector<Node> items;
    std::vector<std::pair<Node, Node>> entries;
    std::map<std::string, Anchor, std::less<>> anchors;
    // Nodes read so far, each alias counted as the nodes it stands for: what the loader
    // would copy. Beyond the document's own nodes, at most kMaxAliasNodes.
    size_t expanded = 0;
    size_t own = 0;
    auto fail = [&](std::string message, const yaml_mark_t& at) {
      error.message = std::move(message);
      error.mark = markOf(at);
      return false;
    };
    doc.root_ = Node();
    bool sawDocument = false;
    while (true) {
      EventGuard ev;
      if (yaml_parser_parse(&guard.p, &ev.e) == 0) {
        error.message = guard.p.problem != nullptr ? guard.p.problem : "invalid YAML";
        if (guard.p.context != nullptr) {
          error.context = guard.p.context;
          error.contextMark = markOf(guard.p.context_mark);
        }
        error.mark = markOf(guard.p.problem_mark);
        return false;
      }
      const yaml_event_t& e = ev.e;
      switch (e.type) {
      case YAML_STREAM_END_EVENT:
        if (!sawDocument) {
          doc.root_ = Node(newNode(doc)); // an empty text: a null root, with no mark
        }
        return true;
      case YAML_DOCUMENT_START_EVENT:
        if (sawDocument) {
          error.message = "more than one document";
          error.mark = markOf(e.start_mark);
          return false;
        }
        sawDocument = true;
        break;
      case YAML_SCALAR_EVENT: {
        ++own;
        ++expanded;
        NodeData* d = newNode(doc);
        d->mark = markOf(e.start_mark);
        if (!isNullScalar(e)) {
          d->type = NodeType::kScalar;
          const size_t n = e.data.scalar.length;
          auto* t = static_cast<char*>(doc.arena_.allocate(n + 1, 1));
          std::memcpy(t, e.data.scalar.value, n);
          t[n] = '\0';
          d->text = t;
          d->size = static_cast<uint32_t>(n);
        }
        attach(doc, open, items, entries, Node(d));
        if (const yaml_char_t* anchor = e.data.scalar.anchor; anchor != nullptr && *anchor != 0) {
          anchors[reinterpret_cast<const char*>(anchor)] = Anchor{d, 1};
        }
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        if (open.size() >= kMaxDepth) {
          return fail("nesting deeper than " + std::to_string(kMaxDepth) +
                          " levels (the limit of sequences and maps within each other)",
                      e.start_mark);
        }
        ++own;
        ++expanded;
        NodeData* d = newNode(doc);
        d->mark = markOf(e.start_mark);
        const bool seq = e.type == YAML_SEQUENCE_START_EVENT;
        d->type = seq ? NodeType::kSequence : NodeType::kMap;
        const yaml_char_t* anchor =
            seq ? e.data.sequence_start.anchor : e.data.mapping_start.anchor;
        attach(doc, open, items, entries, Node(d));
        // A collection's anchor is usable once it is complete, so no alias can make a
        // node its own descendant.
        open.push_back(Open{d, seq ? items.size() : entries.size(), true,
                            anchor != nullptr ? reinterpret_cast<const char*>(anchor) : "",
                            expanded - 1});
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        Open& o = open.back();
        if (o.node->type == NodeType::kSequence) {
          o.node->size = static_cast<uint32_t>(items.size() - o.first);
          o.node->kids = copyOut(doc, items.data() + o.first, o.node->size);
          items.resize(o.first);
        } else {
          o.node->size = static_cast<uint32_t>(entries.size() - o.first);
          o.node->kids = copyOut(doc, entries.data() + o.first, o.node->size);
          entries.resize(o.first);
        }
        if (!o.anchor.empty()) {
          anchors[o.anchor] = Anchor{o.node, expanded - o.expandedBefore};
        }
        open.pop_back();
        break;
      }
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(reinterpret_cast<const char*>(e.data.alias.anchor));
        if (it == anchors.end()) {
          return fail(std::string("unknown anchor *") +
                          reinterpret_cast<const char*>(e.data.alias.anchor) +
                          " (an alias must come after the node it names has ended)",
                      e.start_mark);
        }
        expanded += it->second.expanded;
        if (expanded - own > kMaxAliasNodes) {
          return fail("aliases expand to more than " + std::to_string(kMaxAliasNodes) +
                          " nodes beyond the document's own (the limit)",
                      e.start_mark);
        }
        attach(doc, open, items, entries, Node(it->second.node));
        break;
      }
      default:
        break;
      }
    }
  }
};

bool parse(std::string_view text, Document& doc, ParseError& error) {
  return Parser::run(text, doc, error);
}

} // namespace veer::yaml
