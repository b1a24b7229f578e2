# Copies the browser page (web/client) into the build's static directory, with the editor
# component from npm (CodeMirror 5, installed in web/client/node_modules by
# tools/bootstrap.sh) next to it. Run with cmake -P by the `client` target, at every build:
# it copies only what changed. Without CodeMirror the page falls back to a text area.
#   -DSRC=<web/client> -DDST=<build>/share/isoworld/client
file(MAKE_DIRECTORY ${DST})
foreach(f index.html app.js style.css)
  file(COPY_FILE ${SRC}/${f} ${DST}/${f} ONLY_IF_DIFFERENT)
endforeach()
set(cm ${SRC}/node_modules/codemirror)
set(vendor ${DST}/vendor/codemirror)
if(EXISTS ${cm}/lib/codemirror.js)
  file(MAKE_DIRECTORY ${vendor})
  foreach(f lib/codemirror.js lib/codemirror.css mode/javascript/javascript.js addon/edit/matchbrackets.js LICENSE)
    get_filename_component(n ${f} NAME)
    file(COPY_FILE ${cm}/${f} ${vendor}/${n} ONLY_IF_DIFFERENT)
  endforeach()
else()
  file(REMOVE_RECURSE ${DST}/vendor)
  message(STATUS "client: CodeMirror is not installed (tools/bootstrap.sh does it): the page uses a plain text area")
endif()
