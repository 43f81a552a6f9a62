// GET /console and its assets: the web console, served from bytes embedded in the binary.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gateway/router.h"

namespace quilt::admin {

// /console (the page) and /console/{asset} (its scripts and styles). No auth: the page holds no
// data; it signs in from the browser with a key and calls the admin API like any client.
void add_console_routes(gateway::Router& router);

// The content type served for an asset's file name ("" when the extension is not one we serve).
std::string console_content_type(const std::string& name);

// The headers sent with every console file: a strict Content-Security-Policy (scripts, styles and
// connections only from this origin, no inline code, no framing) and no caching of stale assets.
std::vector<std::pair<std::string, std::string>> console_headers();

}  // namespace quilt::admin
