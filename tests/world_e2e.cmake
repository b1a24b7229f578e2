# world, end to end (issue 6): the starter bot of server/demo/ uploaded through the HTTP API
# runs for thousands of ticks against the real server binary; the world endpoints, their
# refusals, and the room:<NAME> websocket channel (snapshot, then diffs that merge into
# what room-objects says). Clients: screeps-api and ws (Node); isoworld-admin pauses time.
find_program(ISOWORLD_NODE node)
if(ISOWORLD_NODE)
  file(GLOB ISOWORLD_WORLD_E2E CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/e2e/world*.test.mjs)
  foreach(f ${ISOWORLD_WORLD_E2E})
    get_filename_component(n ${f} NAME_WE)
    string(REPLACE "." "_" n ${n})
    add_test(NAME e2e_${n} COMMAND ${ISOWORLD_NODE} --test ${f} WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/e2e)
    set_tests_properties(e2e_${n} PROPERTIES TIMEOUT 400 LABELS "e2e;world"
                         ENVIRONMENT "ISOWORLD_BIN_DIR=${CMAKE_BINARY_DIR}/bin;ISOWORLD_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
                         REQUIRED_FILES "${CMAKE_BINARY_DIR}/bin/isoworld;${CMAKE_BINARY_DIR}/bin/isoworld-admin;${CMAKE_CURRENT_SOURCE_DIR}/e2e/node_modules/screeps-api/package.json;${CMAKE_CURRENT_SOURCE_DIR}/e2e/node_modules/ws/package.json")
  endforeach()
else()
  message(WARNING "node not found: the world end-to-end tests are not registered")
endif()
