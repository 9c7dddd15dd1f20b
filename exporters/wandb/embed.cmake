# exporters/wandb/embed.cmake - turn dashboards/wandb/*.json into C byte arrays
# cmake -DIN_DIR=<dir> -DOUT=<file.c> -P embed.cmake
set(src "/* generated from dashboards/wandb by exporters/wandb/embed.cmake */\n#include <stddef.h>\n")
foreach(name workspace report)
  file(READ ${IN_DIR}/${name}.json hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR n "${n} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(APPEND src "extern const char ex_wandb_dash_${name}[];\nextern const size_t ex_wandb_dash_${name}_len;\n")
  string(APPEND src "const char ex_wandb_dash_${name}[] = {${bytes}0x00};\nconst size_t ex_wandb_dash_${name}_len = ${n};\n")
endforeach()
file(WRITE ${OUT}.tmp "${src}")
configure_file(${OUT}.tmp ${OUT} COPYONLY)
