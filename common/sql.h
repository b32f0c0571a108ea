/* sql: the SQL files of common/sql/, embedded at build time (like the Lua
 * scripts, by embed_lua.cmake), so `adsync-enqueue db migrate` and the
 * worker use the text that is kept with the code. Add a file: drop
 * common/sql/<name>.sql, list it in common/CMakeLists.txt, declare it here. */
#ifndef ADSYNC_SQL_H
#define ADSYNC_SQL_H

extern const char sql_schema[];   /* table campaigns; idempotent (db migrate applies it) */
extern const char sql_check[];    /* read-only: NULL when campaigns is usable, else the problem */

#endif
