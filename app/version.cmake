# Writes quilt_version.h with the commit checked out now: run by the quilt_version target at every
# build, so `quilt --version` never names a stale commit. configure_file rewrites the header only
# when its text changes, so an unchanged commit rebuilds nothing.
# In: QUILT_SOURCE_DIR, QUILT_VERSION, QUILT_VERSION_IN, QUILT_VERSION_OUT.
execute_process(COMMAND git rev-parse --short HEAD WORKING_DIRECTORY ${QUILT_SOURCE_DIR}
                OUTPUT_VARIABLE QUILT_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE QUILT_GIT_RESULT ERROR_QUIET)
if(NOT QUILT_GIT_RESULT EQUAL 0 OR NOT QUILT_GIT_COMMIT)
  set(QUILT_GIT_COMMIT unknown)
endif()
configure_file(${QUILT_VERSION_IN} ${QUILT_VERSION_OUT} @ONLY)
