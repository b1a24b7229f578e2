# The default world (sim/): rules, movement, path finder, determinism, encoding, intent
# fuzzing, room feed, and a measurement that prints costs (label "bench", not asserted).
foreach(t rules move path determinism encode fuzz feed)
  isoworld_unit_test(world_${t} LIBS isoworld_sim TIMEOUT 300 LABELS world)
  if(TARGET test_world_${t})
    target_include_directories(test_world_${t} PRIVATE ${CMAKE_SOURCE_DIR}/sim)
  endif()
endforeach()
if(TARGET test_world_feed)
  target_link_libraries(test_world_feed PRIVATE PkgConfig::JANSSON)
endif()
if(TARGET test_world_path)
  target_link_libraries(test_world_path PRIVATE Threads::Threads)
endif()
# The tutorial's code through sim/js in Node against the C world (skipped without node and
# lodash 3.10.1, which tools/bootstrap.sh installs in sim/js/node_modules).
isoworld_unit_test(world_js LIBS isoworld_sim TIMEOUT 300 LABELS "world;js")
if(TARGET test_world_js)
  target_include_directories(test_world_js PRIVATE ${CMAKE_SOURCE_DIR}/sim)
  target_link_libraries(test_world_js PRIVATE PkgConfig::JANSSON)
endif()
isoworld_unit_test(world_bench LIBS isoworld_sim TIMEOUT 300 LABELS "world;bench")
if(TARGET test_world_bench)
  target_include_directories(test_world_bench PRIVATE ${CMAKE_SOURCE_DIR}/sim)
endif()
# The player API in real isolates: the sandbox library of sim/library.c over the default
# world, the tutorial's roles for 1,500 ticks, and hostile players next to them.
isoworld_unit_test(world_sandbox LIBS isoworld_sim_library TIMEOUT 600 LABELS "world;sandbox")
if(TARGET test_world_sandbox)
  target_include_directories(test_world_sandbox PRIVATE ${CMAKE_SOURCE_DIR}/sim)
endif()
