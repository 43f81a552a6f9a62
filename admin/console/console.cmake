# The web console: its route file, plus its assets turned into byte arrays at build time (no npm,
# no build step: the files under admin/console/ are served as written). Included by
# admin/CMakeLists.txt after quilt_admin exists.
set(QUILT_CONSOLE_DIR ${CMAKE_CURRENT_SOURCE_DIR}/console)
set(QUILT_CONSOLE_ASSETS index.html console.css console.js api.js dom.js prom.js charts.js
    adapters_view.js push_view.js tenants_view.js metrics_view.js)
set(QUILT_CONSOLE_ASSET_PATHS ${QUILT_CONSOLE_ASSETS})
list(TRANSFORM QUILT_CONSOLE_ASSET_PATHS PREPEND ${QUILT_CONSOLE_DIR}/)
# The asset list travels to the script joined by "|" (a ";" would split the argument).
list(JOIN QUILT_CONSOLE_ASSETS "|" QUILT_CONSOLE_ASSET_LIST)
set(QUILT_CONSOLE_GENERATED ${CMAKE_CURRENT_BINARY_DIR}/console_assets.cc)
add_custom_command(
  OUTPUT ${QUILT_CONSOLE_GENERATED}
  COMMAND ${CMAKE_COMMAND} -DSRC_DIR=${QUILT_CONSOLE_DIR} -DFILES=${QUILT_CONSOLE_ASSET_LIST}
          -DOUT=${QUILT_CONSOLE_GENERATED} -P ${QUILT_CONSOLE_DIR}/embed_assets.cmake
  DEPENDS ${QUILT_CONSOLE_ASSET_PATHS} ${QUILT_CONSOLE_DIR}/embed_assets.cmake
          ${PROJECT_SOURCE_DIR}/cmake/write_if_changed.cmake
  COMMENT "Embedding the web console's assets"
  VERBATIM)
target_sources(quilt_admin PRIVATE ${QUILT_CONSOLE_DIR}/console_routes.cc ${QUILT_CONSOLE_GENERATED})
