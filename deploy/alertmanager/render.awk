# Renders an Alertmanager file from a template with values from the environment, because
# Alertmanager itself never reads environment variables (prometheus/alertmanager#504).
#   ${VAR}            the variable's value, escaped for a double-quoted YAML string
#   ${VAR:-default}   the same, with a default when unset or empty
#   #if VAR ... #endif   the lines between are kept only when VAR is set and not empty
# Used by render.sh in the container (busybox awk) and by the tests (any POSIX awk).
# Character by character: gsub's backslash handling in the replacement differs between
# awks (mawk halves "\\\\" where gawk and busybox do not).
function esc(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\" || c == "\"") out = out "\\"
        out = out c
    }
    return out
}
/^[ \t]*#if [A-Z_][A-Z0-9_]*[ \t]*$/ {
    name = $2
    skip = (ENVIRON[name] == "")
    next
}
/^[ \t]*#endif[ \t]*$/ { skip = 0; next }
skip { next }
{
    line = $0
    out = ""
    while (match(line, /\$\{[A-Z_][A-Z0-9_]*(:-[^}]*)?\}/)) {
        ref = substr(line, RSTART + 2, RLENGTH - 3)
        def = ""
        if ((i = index(ref, ":-")) > 0) { def = substr(ref, i + 2); ref = substr(ref, 1, i - 1) }
        value = ENVIRON[ref]
        if (value == "") value = def
        out = out substr(line, 1, RSTART - 1) esc(value)
        line = substr(line, RSTART + RLENGTH)
    }
    print out line
}
