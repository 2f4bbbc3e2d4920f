#pragma once

namespace veer {

/** The version every veer binary reports (`--version`): `git describe` of the build's tree. */
const char* veerVersion();

} // namespace veer
