#!/usr/bin/env python3
"""Adds to each entry of baseline.json the server's answer schemathesis reported for it.

Usage: annotate_baseline.py BASELINE JUNIT... (run.sh calls it after SCHEMATHESIS_BASELINE_UPDATE=1)
so the committed list says, next to each accepted failure, what the server answered.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET

base_path = sys.argv[1]
CODES = {"positive_data_acceptance": "ST202", "negative_data_rejection": "ST201"}
answers = {}
for f in sys.argv[2:]:
    for tc in ET.parse(f).getroot().iter('testcase'):
        for fl in tc.findall('failure'):
            for block in re.split(r'\n\d+\. Test Case ID', '\n' + (fl.text or '')):
                code = re.search(r'- (ST\d+)', block)
                body = re.findall(r'^\s+`(.*)`$', block, re.M)
                if code and body:
                    b = re.sub(r',?"timestamp":"[^"]*"', '', body[0])
                    answers.setdefault((tc.get('name'), code.group(1)), b[:300])
doc = json.load(open(base_path))
for e in doc['entries']:
    a = answers.get((e['operation'], CODES.get(e['check'], '')))
    if a and 'server_said' not in e:
        e['server_said'] = a
json.dump(doc, open(base_path, 'w'), indent=2, ensure_ascii=False)
open(base_path, 'a').write('\n')
