# websockets: live consoles, CPU, code and Memory channels, SockJS, slow clients, and the
# browser page (issue 5). A cmocka test of web's websocket layer over real sockets, and
# end-to-end tests against the real binary with real clients: screeps-api and ws (Node),
# and Debian's chromium driven by playwright-core for the page.
isoworld_unit_test(ws LIBS isoworld_web PkgConfig::ZLIB PkgConfig::SODIUM TIMEOUT 180 LABELS ws)

find_program(ISOWORLD_NODE node)
if(ISOWORLD_NODE)
  file(GLOB ISOWORLD_WS_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/ws_*.test.mjs)
  foreach(f ${ISOWORLD_WS_E2E})
    get_filename_component(n ${f} NAME_WE)
    string(REPLACE "." "_" n ${n})
    add_test(NAME e2e_${n} COMMAND ${ISOWORLD_NODE} --test ${f} WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
    # Needs the server binary, the page (target `client`) and the npm clients (make test
    # runs tools/bootstrap.sh --e2e --browser: npm packages and Debian's chromium).
    set_tests_properties(e2e_${n} PROPERTIES TIMEOUT 300 LABELS "e2e;ws"
                         ENVIRONMENT "ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin;ISOWORLD_ARTIFACTS=${CMAKE_BINARY_DIR}/artifacts"
                         REQUIRED_FILES "${CMAKE_BINARY_DIR}/bin/isoworld;${CMAKE_CURRENT_SOURCE_DIR}/e2e/node_modules/screeps-api/package.json")
  endforeach()
  if(TEST e2e_ws_slow)
    # it measures delivery and tick times: alone, so other tests' load does not skew them
    set_tests_properties(e2e_ws_slow PROPERTIES RUN_SERIAL TRUE)
  endif()
  if(TEST e2e_ws_page)
    # the page as built (target `client`) and a browser to drive
    set_tests_properties(e2e_ws_page PROPERTIES REQUIRED_FILES
      "${CMAKE_BINARY_DIR}/bin/isoworld;${ISOWORLD_CLIENT_DIR}/index.html;/usr/bin/chromium;${CMAKE_CURRENT_SOURCE_DIR}/e2e/node_modules/playwright-core/package.json")
  endif()
else()
  message(WARNING "node not found: the websocket end-to-end tests are not registered")
endif()
