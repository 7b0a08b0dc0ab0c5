// glob_match(): the glob-style patterns of KEYS, SCAN MATCH and CONFIG GET,
// as Redis's stringmatchlen() reads them: `*` any run of bytes, `?` one
// byte, `[abc]`, `[^abc]` and `[a-z]` a set of bytes, `\x` the byte x.
#pragma once

#include <string_view>

namespace kv {

bool glob_match(std::string_view pattern, std::string_view s);

}  // namespace kv
