# Writes a .cc holding gateway/openapi/openapi.json as a string (run at build time with cmake -P).
# Inputs: SRC (the JSON document), OUT (the .cc to write). A document that is not valid JSON fails
# the build.
file(READ "${SRC}" doc)
string(JSON openapi_version ERROR_VARIABLE json_error GET "${doc}" openapi)
if(json_error)
  message(FATAL_ERROR "${SRC} is not a valid OpenAPI JSON document: ${json_error}")
endif()
if(doc MATCHES "\\)quilt_openapi\"")
  message(FATAL_ERROR "${SRC} holds the raw-string delimiter )quilt_openapi\"")
endif()
set(body "// Generated from gateway/openapi/openapi.json by embed_openapi.cmake: do not edit.\n")
string(APPEND body "#include \"gateway/openapi/openapi_route.h\"\n\nnamespace quilt::gateway {\n\n")
string(APPEND body "std::string_view openapi_document() {\n  static constexpr std::string_view kDoc = R\"quilt_openapi(")
string(APPEND body "${doc})quilt_openapi\";\n  return kDoc;\n}\n\n}  // namespace quilt::gateway\n")
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/write_if_changed.cmake")
quilt_write_if_changed("${OUT}" "${body}")
