/* gateway/policies/injection/injection_rules.c - the weighted rule table (PCRE2) */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/injection_internal.h"

/* Patterns see normalised text: lowercase ASCII-folded Latin (accents
 * removed), single spaces, no newlines. Their weights are learned with the
 * n-gram model (scripts/train-injection.sh) and are never negative: a rule
 * only adds evidence, the n-grams learn the benign contexts. Keep each
 * pattern anchored on a literal word so PCRE2's start-of-match optimisation
 * keeps the scan cheap; `(?:\w+\W+){0,3}` allows a few filler words. */
#define Q "(?:previous|prior|above|earlier|preceding|former|initial|original|old|existing|" \
          "system|developer|safety|all|any|every|the|these|those|your|my|of|other|given|" \
          "provided|current|programmed|default)"
#define RULESET                                                                                   \
    "(?:instructions?|prompts?|rules|directions?|guidelines|commands?|context|constraints|"      \
    "restrictions|guardrails|programming|directives?|orders|policies|filters|messages?|tasks?)"

const struct injection_rule injection_rules[] = {
    /* instruction override */
    {"override.ignore_previous", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget|override|bypass|neglect|overlook|abandon|discard|skip)"
     "\\W*(?:" Q "\\W*){1,4}" RULESET},
    {"override.ignore_any", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget|override|bypass)\\W+(?:\\w+\\W+){0,2}" RULESET},
    {"override.ignore_everything", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget)\\W+(?:everything|all(?: of)? (?:that|this|the above)|what)"
     "\\W+(?:\\w+\\W+){0,4}(?:told|said|instructed|written|above|before|earlier)"},
    {"override.new_instructions", INJECTION_FAM_OVERRIDE,
     "\\b(?:new|updated|real|actual|revised|true|secret|hidden|additional|important) "
     "(?:instructions?|rules|task|directive|system prompt|orders)\\W*(?::|are\\b|is\\b|follow)"},
    {"override.from_now_on", INJECTION_FAM_OVERRIDE,
     "\\b(?:from now on|starting now|from this (?:point|moment)|henceforth|for the rest of "
     "(?:this|the|our) conversation),? (?:you|u|your|chatgpt|the ai|act|answer|respond)"},
    {"override.instead", INJECTION_FAM_OVERRIDE,
     "\\b(?:instead|rather),? (?:you (?:must|should|will|shall)|(?:just |only )?(?:say|print|"
     "output|respond|reply|write|answer) (?:with|only|the|that))"},
    {"override.fr", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore[zr]?|oublie[zr]?|neglige[zr]?|fais abstraction|ne tiens pas compte)\\W+"
     "(?:\\w+\\W+){0,3}(?:instructions?|consignes|regles|directives|indications|ordres)\\b"},
    {"override.de", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignorier\\w*|vergiss\\w*|vergessen sie|missacht\\w*|uberg\\w*|verwirf\\w*)\\W+"
     "(?:\\w+\\W+){0,3}(?:anweisung\\w*|befehl\\w*|regeln|instruktion\\w*|vorgaben|"
     "richtlinien)"},
    {"override.es_it_pt", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignora\\w*|olvida\\w*|omite|omitir|descarta\\w*|haz caso omiso|dimentica\\w*|"
     "esqueca\\w*|esquece\\w*|desconsidera\\w*)\\W+(?:\\w+\\W+){0,3}(?:instrucciones|"
     "indicaciones|reglas|ordenes|directrices|istruzioni|regole|indicazioni|instrucoes|regras)"},
    /* system-prompt exfiltration */
    {"exfil.reveal_prompt", INJECTION_FAM_EXFIL,
     "\\b(?:reveal|show|print|display|output|repeat|tell|give|share|leak|disclose|expose|recite|"
     "write|spell|dump|provide|list|say|type)\\W+(?:\\w+\\W+){0,3}(?:system ?prompt|"
     "(?:initial|original|hidden|secret|internal|first|pre) ?(?:prompt|instructions)|"
     "secret (?:key|password|word|code)|password|passphrase|developer (?:message|prompt))"},
    {"exfil.what_is_prompt", INJECTION_FAM_EXFIL,
     "\\bwhat (?:is|are|was|were) (?:your|the) (?:system prompt|initial instructions|original "
     "instructions|instructions|secret(?: key| word| code)?|password|rules|prompt|hidden \\w+)\\b"},
    {"exfil.repeat_above", INJECTION_FAM_EXFIL,
     "\\b(?:repeat|print|output|copy|echo|return|reproduce|translate|summarize)\\W+"
     "(?:\\w+\\W+){0,4}(?:above|before this|preceding|verbatim|word for word|so far)\\b"},
    {"exfil.ml", INJECTION_FAM_EXFIL,
     "\\b(?:revele[zr]?|montre[zr]?|affiche[zr]?|donne[zr]?|dis(?:-moi)?|verrat\\w*|verrate|"
     "zeig\\w*|gib|nenne|sag|revela\\w*|muestra\\w*|dime|dame|rivela\\w*|mostra\\w*|dimmi)\\W+"
     "(?:\\w+\\W+){0,3}(?:mot de passe|cle secrete|instructions|invite systeme|passwort|"
     "geheim\\w*|schlussel|anweisungen|systemprompt|contrasena|clave secreta|instrucciones|"
     "chiave segreta|istruzioni|senha|chave secreta)"},
    /* role-play / DAN personas */
    {"persona.dan", INJECTION_FAM_PERSONA,
     "\\b(?:do anything now|dan mode|anti-?dan|betterdan|evil-?bot|jailbre(?:a)?k(?:en)?|"
     "always intelligent and machiavellian|aim stands for|stay in character)\\b"},
    {"persona.names", INJECTION_FAM_PERSONA, "\\b(?:dan|stan|dude|aim|mongo tom|ucar)\\b"},
    {"persona.mode", INJECTION_FAM_PERSONA,
     "\\b(?:developer|dev|god|jailbreak|unrestricted|unfiltered|uncensored|evil|opposite|chaos|"
     "dan|sudo|debug|admin|maintenance) mode\\b"},
    {"persona.unrestricted", INJECTION_FAM_PERSONA,
     "\\b(?:you are|you're|act as|acting as|pretend (?:to be|you are)|role-?play as|become|"
     "behave as|simulate|play the role of|you will be)\\W+(?:\\w+\\W+){0,5}(?:unrestricted|"
     "unfiltered|uncensored|amoral|unethical|immoral|without (?:any )?(?:restrictions|limits|"
     "limitations|filters|rules|ethics|morals|guidelines|censorship)|no (?:restrictions|limits|"
     "filters|rules|ethics|morals|guidelines|censorship))"},
    {"persona.no_guidelines", INJECTION_FAM_PERSONA,
     "\\b(?:no|without|free (?:of|from)|not bound by|(?:does|do)(?:n't| not) (?:have|follow|"
     "care about)(?: any)?|abide by no|break(?:s|ing)?|ignore[sd]?)(?: \\w+){0,2} (?:ethical|"
     "moral|content|safety|openai(?:'s)?|programming|usage) (?:guidelines|restrictions|policies|"
     "policy|filters?|constraints|limitations|rules|principles|boundaries|standards)"},
    {"persona.never_refuse", INJECTION_FAM_PERSONA,
     "\\b(?:never refuse|cannot refuse|can't refuse|will not refuse|won't refuse|must not "
     "refuse|not allowed to refuse|always (?:answer|respond|comply)|never (?:say|tell) (?:me )?"
     "(?:that )?(?:you )?(?:can't|cannot)|without (?:any )?(?:warnings?|disclaimers?))"},
    {"persona.dual_output", INJECTION_FAM_PERSONA,
     "(?:\\[(?:classic|jailbreak|jailbroken|gpt|chatgpt|normal|dan|lockdown|unlocked)\\]|"
     "\\b(?:two|2|dual) (?:different |separate )?(?:responses|answers|replies|paragraphs)\\b|"
     "\\bgenerate two\\b)"},
    {"persona.tokens", INJECTION_FAM_PERSONA,
     "\\b(?:tokens? (?:will be )?deducted|lose (?:\\w+ )?tokens|token system|(?:you )?have "
     "\\d+ tokens)\\b"},
    {"persona.openai_policy", INJECTION_FAM_PERSONA,
     "\\b(?:openai|anthropic)(?:'s)? (?:content |usage )?(?:polic(?:y|ies)|guidelines|rules)"},
    /* fake delimiters and system tags */
    {"delim.chat_tokens", INJECTION_FAM_DELIMITER,
     "(?:<\\|(?:im_start|im_end|system|user|assistant|endoftext|end|start_header_id|"
     "end_header_id|eot_id|begin_of_text)\\|>|\\[/?inst\\]|<</?sys>>|</?(?:system|sys|"
     "system_prompt|instructions?|admin|developer)>)"},
    {"delim.heading", INJECTION_FAM_DELIMITER,
     "(?:#{2,}|\\*{2,}|={3,}|-{3,}|\\[{2,}) ?(?:system|admin|developer|new instructions?|"
     "end of (?:user )?input|instructions?|important|override)\\b"},
    {"delim.role_prefix", INJECTION_FAM_DELIMITER,
     "\\b(?:system|admin|developer|root|sysadmin)(?: message| note| override| prompt| update|"
     "| alert| notice| instruction)? ?: ?(?:\\w+ ){0,3}(?:ignore|you (?:must|are|will|should)|"
     "new|override|disregard|forget|reveal|from now|the (?:user|assistant))"},
    {"delim.end_of_input", INJECTION_FAM_DELIMITER,
     "\\b(?:(?:end|stop) of (?:user )?(?:input|prompt|instructions|context|document|text|"
     "conversation|data)|(?:begin|start)(?: of)? (?:new )?(?:system|admin|developer) (?:prompt|"
     "instructions|message|mode))\\b"},
    {"delim.bracket_role", INJECTION_FAM_DELIMITER,
     "[\\[(](?:system|admin|developer|assistant|sudo)(?: note| message| override)?[\\]):]"},
    /* hidden / indirect injection */
    {"hidden.html_comment", INJECTION_FAM_HIDDEN,
     "<!--[^>]{0,300}?\\b(?:ignore|instructions?|assistant|ai|system|prompt|you must|"
     "do not|summar\\w*)\\b"},
    {"hidden.invisible_css", INJECTION_FAM_HIDDEN,
     "(?:display ?: ?none|visibility ?: ?hidden|font-size ?: ?0(?:px)?\\b|color ?: ?(?:white|"
     "#fff(?:fff)?|transparent)|opacity ?: ?0\\b)"},
    {"hidden.address_ai", INJECTION_FAM_HIDDEN,
     "\\b(?:if you are|if you're|attention|note to|message (?:to|for)|dear|hey|instructions? "
     "(?:to|for)|important (?:to|for))\\W+(?:the |an? |any )?(?:ai|llm|language model|"
     "assistant|chatbot|gpt|chatgpt|model|bot|agent)s?\\b"},
    {"hidden.md_exfil", INJECTION_FAM_HIDDEN,
     "!\\[[^\\]]{0,100}\\]\\(https?://[^)\\s]{0,200}[?&][a-z_]{1,20}="},
    {"hidden.insert_into_answer", INJECTION_FAM_HIDDEN,
     "\\b(?:add|include|insert|embed|integrate|incorporate|append|feature|blend|inject|put|"
     "mention|place)\\b(?:\\W+\\w+){0,8}\\W+(?:in|into|within|to|throughout|across) "
     "(?:your|the|any) (?:response|answer|reply|output|code|solution|summary|codebase|"
     "implementation|message)"},
    {"hidden.transform_answer", INJECTION_FAM_HIDDEN,
     "\\b(?:encode|encrypt|translate|reverse|rewrite|convert|represent|express|write|format|"
     "use)\\b(?:\\W+\\w+){0,5}\\W+(?:your|the) (?:entire )?(?:response|answer|reply|output)"
     "(?:'s)?\\b"},
    {"hidden.answer_instruction", INJECTION_FAM_HIDDEN,
     "\\b(?:your|the) (?:response|answer|reply|output)s? (?:must|should|shall|will|has to|needs? "
     "to)\\b"},
};

const size_t injection_nrules = sizeof(injection_rules) / sizeof(injection_rules[0]);

size_t injection_rule_count(void)
{
    return injection_nrules;
}

const char *injection_rule_name(size_t i)
{
    return i < injection_nrules ? injection_rules[i].name : "";
}

enum injection_family injection_rule_family(size_t i)
{
    return i < injection_nrules ? injection_rules[i].family : INJECTION_FAM_OBFUSCATION;
}

const char *injection_family_name(enum injection_family f)
{
    static const char *const names[] = {"override", "exfiltration", "persona",
                                        "delimiter", "hidden",       "obfuscation"};
    return (unsigned)f < INJECTION_NFAMILIES ? names[f] : "unknown";
}
