// The built-in part of the specificity (regression) set: everyday code prefixes whose
// continuation the model is asked for before a repair. What the model completes there before the
// patch is taken as right, so specificity measures how many of these the patch leaves unchanged,
// even before the user has accepted any completion of their own.

export const BUILTIN_REGRESSION_PROMPTS: readonly string[] = [
  'def add(a, b):\n    return',
  'import os\nimport',
  'for i in range(',
  'class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y =',
  'if __name__ ==',
  'with open(path) as f:\n    data =',
  'def is_even(n):\n    return n %',
  'numbers = [1, 2, 3]\ntotal = sum(',
  'try:\n    value = int(text)\nexcept',
  'def greet(name):\n    print(',
  'result = []\nfor item in items:\n    result.',
  'while True:\n    line = input()\n    if not line:\n        ',
];

/** Most tokens of each built-in continuation: enough to notice a changed completion, cheap to score. */
export const BUILTIN_REGRESSION_TOKENS = 8;
