# The rotation tables of scripts/rotation.sh from its JSONL (jq -s): per held-out family, the
# configuration chosen on the two other families and its figures on the held-out one.
def r3: . * 1000 | round / 1000;
def pol($n): .policies[] | select(.name == $n);
def enrich:
  . as $x
  | ([.policies[] | select(.name != "oracle" and .name != "bi")] | min_by(.mean_cost)) as $best
  | . + {bi: ($x | pol("bi").ratio_to_oracle),
         bi_ci: (($x | pol("bi").ci95) / ($x | pol("oracle").mean_cost)),
         textbook: ($x | pol("bi-textbook").ratio_to_oracle),
         greedy: ($x | pol("greedy").ratio_to_oracle),
         best_name: $best.name, best: $best.ratio_to_oracle,
         rel: (($x | pol("bi").mean_cost) / $best.mean_cost)};
def stats:
  {n: length, mean_bi: (map(.bi) | add / length), max_bi: (map(.bi) | max),
   over_105: (map(select(.bi > 1.05)) | length), mean_rel: (map(.rel) | add / length),
   max_rel: (map(.rel) | max), over_102: (map(select(.rel > 1.02)) | length),
   mean_textbook: (map(.textbook) | add / length), mean_greedy: (map(.greedy) | add / length)};
map(enrich) as $all
| ($all | map(.family) | unique) as $families
| ($all | map(.config) | unique) as $configs
| [ $families[] as $held
    | ([ $configs[] as $c
        | ($all | map(select(.config == $c and .family != $held)) | stats) as $t
        | {config: $c, key: [$t.over_102, $t.mean_bi]} ] | min_by(.key) | .config) as $chosen
    | {held_out: $held, config: $chosen,
       rows: ($all | map(select(.config == $chosen and .family == $held))),
       stats: ($all | map(select(.config == $chosen and .family == $held)) | stats)} ] as $rot
| ( "Held-out family | config (tuned on the other two) | settings | bi / oracle mean | max | > 1.05 | bi / best other mean | max | > 1.02 | bi-textbook mean | greedy mean",
    "---|---|---|---|---|---|---|---|---|---|---",
    ($rot[] | "\(.held_out) | \(.config) | \(.stats.n) | \(.stats.mean_bi | r3) | \(.stats.max_bi | r3) | \(.stats.over_105) | \(.stats.mean_rel | r3) | \(.stats.max_rel | r3) | \(.stats.over_102) | \(.stats.mean_textbook | r3) | \(.stats.mean_greedy | r3)"),
    "",
    ($rot[] |
      "Held out: \(.held_out), config \(.config). Ratio to the oracle (bi +- 95% CI):",
      "",
      "trace | model | device | law | codecs | bi | bi-textbook | greedy | best other | bi / best other",
      "---|---|---|---|---|---|---|---|---|---",
      (.rows | sort_by(.trace, .model, .slowdown, .law, .codecs)[] |
        "\(.trace) | \(.model) | \(.slowdown)x | \(if .law == "trace" then "iid" else "markov" end) | \(.codecs) | \(.bi | r3) +- \(.bi_ci | r3) | \(.textbook | r3) | \(.greedy | r3) | \(.best_name) \(.best | r3) | \(.rel | r3)"),
      ""),
    ({rotation: [$rot[] | {held_out, config, settings: .stats.n,
                           mean_ratio_to_oracle: (.stats.mean_bi | r3),
                           max_ratio_to_oracle: (.stats.max_bi | r3),
                           over_1_05: .stats.over_105, max_vs_best_other: (.stats.max_rel | r3),
                           over_2pct_vs_best_other: .stats.over_102}]} | tojson) )
