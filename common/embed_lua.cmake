# Turns each Lua script into a C string constant at build time, so the
# scripts live in their own .lua files yet ship inside the binaries.
#   cmake -DOUT=<file.c> -DSCRIPTS="a.lua;b.lua" -P embed_lua.cmake
file(WRITE ${OUT}.tmp "/* Generated from common/lua by embed_lua.cmake: do not edit. */\n")
foreach(src IN LISTS SCRIPTS)
  get_filename_component(name ${src} NAME_WE)
  file(READ ${src} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "(char)0x\\1," bytes "${hex}")
  file(APPEND ${OUT}.tmp "const char script_${name}[] = {${bytes}0x00};\n")
endforeach()
file(RENAME ${OUT}.tmp ${OUT})
