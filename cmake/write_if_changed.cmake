# quilt_write_if_changed(PATH CONTENT): writes CONTENT to PATH only when it differs from what is
# there, so that a build-time generator run by an unrelated rebuild does not recompile its output.
# For the scripts run with cmake -P (admin/console/embed_assets.cmake, gateway/openapi/embed_openapi.cmake).
function(quilt_write_if_changed path content)
  if(EXISTS "${path}")
    file(READ "${path}" old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE "${path}" "${content}")
endfunction()
