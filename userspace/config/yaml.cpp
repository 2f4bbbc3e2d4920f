// libyaml events -> a Document tree. Iterative (an explicit stack), so nesting depth costs
// heap, not stack.

#include "config/yaml.h"

#include <yaml.h>

#include <map>

namespace veer::yaml {

namespace {

const std::string kEmpty;
const std::vector<Node> kNoItems;
const std::vector<std::pair<Node, Node>> kNoEntries;

Mark markOf(const yaml_mark_t& m) { return Mark{static_cast<int>(m.line), static_cast<int>(m.column)}; }

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

const std::string& Node::scalar() const {
  return d_ != nullptr && d_->type == NodeType::kScalar ? d_->scalar : kEmpty;
}
Mark Node::mark() const { return d_ == nullptr ? Mark{} : d_->mark; }
const std::vector<Node>& Node::items() const {
  return d_ != nullptr && d_->type == NodeType::kSequence ? d_->items : kNoItems;
}
const std::vector<std::pair<Node, Node>>& Node::entries() const {
  return d_ != nullptr && d_->type == NodeType::kMap ? d_->entries : kNoEntries;
}

struct Parser {
  /** Adds a node to its parent (the open sequence or map on the stack), or makes it the root. */
  static void attach(Document& doc, std::vector<NodeData*>& stack, std::vector<bool>& keyNext,
                     Node n) {
    if (stack.empty()) {
      doc.root_ = n;
      return;
    }
    NodeData* parent = stack.back();
    if (parent->type == NodeType::kSequence) {
      parent->items.push_back(n);
    } else if (keyNext.back()) {
      parent->entries.emplace_back(n, Node());
      keyNext.back() = false;
    } else {
      parent->entries.back().second = n;
      keyNext.back() = true;
    }
  }

  static bool run(std::string_view text, Document& doc, ParseError& error) {
    ParserGuard guard;
    yaml_parser_set_input_string(&guard.p, reinterpret_cast<const unsigned char*>(text.data()),
                                 text.size());
    std::vector<NodeData*> stack;
    std::vector<bool> keyNext;         // per open map: the next node is a key
    std::vector<std::string> pending;  // per open collection: its anchor, named once closed
    std::map<std::string, const NodeData*> anchors;
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
          doc.nodes_.emplace_back(); // an empty text: a null root
          doc.root_ = Node(&doc.nodes_.back());
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
      case YAML_SCALAR_EVENT:
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        doc.nodes_.emplace_back();
        NodeData& d = doc.nodes_.back();
        d.mark = markOf(e.start_mark);
        const yaml_char_t* anchor = nullptr;
        if (e.type == YAML_SCALAR_EVENT) {
          anchor = e.data.scalar.anchor;
          d.type = isNullScalar(e) ? NodeType::kNull : NodeType::kScalar;
          if (d.type == NodeType::kScalar) {
            d.scalar.assign(reinterpret_cast<const char*>(e.data.scalar.value),
                            e.data.scalar.length);
          }
        } else if (e.type == YAML_SEQUENCE_START_EVENT) {
          anchor = e.data.sequence_start.anchor;
          d.type = NodeType::kSequence;
        } else {
          anchor = e.data.mapping_start.anchor;
          d.type = NodeType::kMap;
        }
        attach(doc, stack, keyNext, Node(&d));
        if (e.type != YAML_SCALAR_EVENT) {
          // A collection's anchor is usable once it is complete, so no alias can make a
          // node its own descendant.
          stack.push_back(&d);
          keyNext.push_back(true);
          pending.emplace_back(anchor != nullptr ? reinterpret_cast<const char*>(anchor) : "");
        } else if (anchor != nullptr && *anchor != 0) {
          anchors[reinterpret_cast<const char*>(anchor)] = &d;
        }
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        if (!pending.back().empty()) {
          anchors[pending.back()] = stack.back();
        }
        stack.pop_back();
        keyNext.pop_back();
        pending.pop_back();
        break;
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(reinterpret_cast<const char*>(e.data.alias.anchor));
        if (it == anchors.end()) {
          error.message = std::string("unknown anchor *") +
                          reinterpret_cast<const char*>(e.data.alias.anchor) +
                          " (an alias must come after the node it names has ended)";
          error.mark = markOf(e.start_mark);
          return false;
        }
        attach(doc, stack, keyNext, Node(it->second));
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
