# Turns a file (or several, concatenated: IN="a|b|c") into a C source defining
# `const char NAME[]` (NUL-terminated).
# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed.cmake
string(REPLACE "|" ";" files "${IN}")
set(body "")
foreach(f ${files})
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," part "${hex}")
  string(APPEND body "${part}")
endforeach()
file(WRITE ${OUT} "/* generated from ${IN}; do not edit */\nconst char ${NAME}[] = {${body}0x00};\n")
