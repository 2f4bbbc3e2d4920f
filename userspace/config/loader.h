#pragma once

// Kubernetes YAML -> Config (model.h), with positioned diagnostics.

#include <string>
#include <string_view>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "config/model.h"
#include "config/plan.h"

namespace veer {

struct LoadResult {
  Config config;
  Diagnostics diags;
};

/**
 * The largest config file loadPaths reads: a larger one is an error, found from its size
 * before any of it is read. The compile bench's 10,000 services are 32 MiB of YAML in five
 * files; a ConfigMap holds at most 1 MiB in all.
 */
inline constexpr size_t kMaxConfigFileBytes = 64u << 20;

/**
 * The largest YAML document (the text between "---" markers): a larger one is an error at
 * its first line and is never parsed. The API server takes no object over 3 MiB; this
 * bounds what one document's tree can cost (the tree of a flow map is about 20 times its
 * text).
 */
inline constexpr size_t kMaxDocumentBytes = 4u << 20;

/**
 * Loads files and directories (recursively; *.yaml, *.yml, *.json; entries whose
 * name starts with ".." are skipped, so a ConfigMap mount is read once through
 * its top-level symlinks). Multi-document files, any order. Unknown kinds are
 * warnings. Diagnostics name file:line:column.
 *
 * A directory named in paths is a boundary: a symlink under it may lead anywhere inside
 * it (a ConfigMap's ..data links do) but not out of it, which is an error. Each real
 * directory and file is read once however many links lead to it. A file with no read
 * permission bit (mode 0000), or over kMaxConfigFileBytes, is an error and is not read.
 */
LoadResult loadPaths(const std::vector<std::string>& paths);

/** Loads one YAML text as if it were the file fileName. */
LoadResult loadString(std::string_view yaml, const std::string& fileName);

/** A config file the walk opened and checked, for a caller that reads it itself. */
struct ConfigFile {
  std::string name; // the path as walked, which names it in diagnostics
  Fd fd;
};

/**
 * The files loadPaths would read for paths, opened and checked as it opens them
 * (confined to a directory, readable, within kMaxConfigFileBytes), in its order. What it
 * would refuse is reported in diags.
 */
std::vector<ConfigFile> openConfigFiles(const std::vector<std::string>& paths, Diagnostics& diags);

/**
 * Reads an opened config file whole; one that grew past kMaxConfigFileBytes is an error
 * (the message does not repeat the file's name).
 */
Result<std::string> readConfigFile(const ConfigFile& file);

/** One config file's text, read by its caller (the agent keeps the last whole version). */
struct ConfigText {
  std::string file; // names the text in diagnostics
  std::shared_ptr<const std::string> text;
};

/** Loads texts as loadPaths loads the files they were read from, in this order. */
LoadResult loadTexts(const std::vector<ConfigText>& texts);

} // namespace veer
