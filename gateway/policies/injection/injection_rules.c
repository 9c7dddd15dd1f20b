/* gateway/policies/injection/injection_rules.c - the weighted rule table (PCRE2) */
/* SPDX-License-Identifier: Apache-2.0 */
#include "gateway/policies/injection/injection.h"
#include "gateway/policies/injection/injection_internal.h"

/* Patterns see normalised text: lowercase ASCII-folded Latin (accents
 * removed), single spaces, no newlines. Their weights are learned with the
 * n-gram model (scripts/train-injection.sh) and are never negative: a rule
 * only adds evidence, the n-grams learn the benign contexts.
 *
 * `anchors` lists the words a match can start with. The scorer notes where
 * they occur while hashing n-grams and tries the rule only there, anchored,
 * so 30+ rules cost a few anchored attempts instead of 30+ scans of the text.
 * NULL means scan the whole text (patterns that start with rare punctuation,
 * which PCRE2 skips to quickly). The trainer uses the very same path, so
 * training and scoring see identical features. Patterns that need the
 * character before the anchor word use a lookbehind. */
#define Q                                                                                          \
    "(?:previous|prior|above|earlier|preceding|former|initial|original|old|existing|"              \
    "system|developer|safety|all|any|every|the|these|those|your|my|of|other|given|"                \
    "provided|current|programmed|default)"
#define RULESET                                                                                    \
    "(?:instructions?|prompts?|rules|directions?|guidelines|commands?|context|constraints|"        \
    "restrictions|guardrails|programming|directives?|orders|policies|filters|messages?|tasks?)"
#define OVERRIDE_VERBS                                                                             \
    "ignore disregard forget override bypass neglect overlook abandon discard skip"

const struct injection_rule injection_rules[] = {
    /* instruction override */
    {"override.ignore_previous", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget|override|bypass|neglect|overlook|abandon|discard|skip)"
     "\\W*(?:" Q "\\W*){1,4}" RULESET,
     OVERRIDE_VERBS},
    {"override.ignore_any", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget|override|bypass)\\W+(?:\\w+\\W+){0,2}" RULESET,
     "ignore disregard forget override bypass"},
    {"override.ignore_everything", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget)\\W+(?:everything|all(?: of)? (?:that|this|the above)|what)"
     "\\W+(?:\\w+\\W+){0,4}(?:told|said|instructed|written|above|before|earlier)",
     "ignore disregard forget"},
    {"override.new_instructions", INJECTION_FAM_OVERRIDE,
     "\\b(?:new|updated|real|actual|revised|true|secret|hidden|additional|important) "
     "(?:instructions?|rules|task|directive|system prompt|orders)\\W*(?::|are\\b|is\\b|follow)",
     "new updated real actual revised true secret hidden additional important"},
    {"override.from_now_on", INJECTION_FAM_OVERRIDE,
     "\\b(?:from now on|starting now|from this (?:point|moment)|henceforth|for the rest of "
     "(?:this|the|our) conversation),? (?:you|u|your|chatgpt|the ai|act|answer|respond)",
     "from starting henceforth for"},
    {"override.instead", INJECTION_FAM_OVERRIDE,
     "\\b(?:instead|rather),? (?:you (?:must|should|will|shall)|(?:just |only )?(?:say|print|"
     "output|respond|reply|write|answer) (?:with|only|the|that))",
     "instead rather"},
    {"override.fr", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore[zrs]?|oublie[zrs]?|neglige[zr]?|fais abstraction|ne tiens pas compte)\\W+"
     "(?:\\w+\\W+){0,3}(?:instructions?|consignes|regles|directives|indications|ordres)\\b",
     "ignore ignorez ignorer ignores oublie oubliez oublier oublies neglige negligez "
     "negliger fais ne"},
    {"override.de", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignorier(?:e|en|t|st)?|vergiss|vergessen|missacht(?:e|en|et)|ubergeh(?:e|en)?|"
     "verwirf)\\W+(?:\\w+\\W+){0,3}(?:anweisung(?:en)?|befehle?|regeln|instruktion(?:en)?|"
     "vorgaben|richtlinien)",
     "ignorier ignoriere ignorieren ignoriert ignorierst vergiss vergessen missachte "
     "missachten missachtet ubergeh ubergehe ubergehen verwirf"},
    {"override.es_it_pt", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignora|ignore|ignorar|ignores|ignorad|olvida|olvide|olvidar|omite|omitir|descarta|"
     "descartar|haz caso omiso|dimentica|dimenticare|esqueca|esquece|desconsidera|"
     "desconsiderar)\\W+(?:\\w+\\W+){0,3}(?:instrucciones|indicaciones|reglas|ordenes|"
     "directrices|istruzioni|regole|indicazioni|instrucoes|regras)",
     "ignora ignore ignorar ignores ignorad olvida olvide olvidar omite omitir descarta "
     "descartar haz dimentica dimenticare esqueca esquece desconsidera desconsiderar"},
    {"override.ignore_then", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignore|disregard|forget about|ignorieren sie|ignoriere|ignorez|ignora)\\W+(?:all of )?"
     "(?:the|this|that|these|those|die|den|das|la|le|el|il|a|o) (?:above|function|resume|cv|"
     "document|text|article|table|paper|e-?mail|webpage|page|website|code|comment|input|data|"
     "question|content|request|query|message|funktion|fonction|funcion|funzione|funcao|texte|"
     "texto|testo)\\b\\W+(?:and|then|und|et|y|e)\\W+(?:(?:instead|just|simply|only) )?(?:say|state|"
     "print|output|write|repeat|give|tell|respond|reply|answer|return|claim|geben|gib|dis|di|"
     "escribe|scrivi|diga)\\b",
     "ignore disregard forget ignorieren ignoriere ignorez ignora"},
    {"override.ignore_above_ml", INJECTION_FAM_OVERRIDE,
     "\\b(?:ignor(?:e|ez|a|ar|iere|ieren sie)|oublie[zr]?|olvida|dimentica|esquece|vergiss) "
     "(?:o acima|lo anterior|lo de arriba|ce qui precede|quanto sopra|tutto (?:cio|quello) che|"
     "tout ce (?:qu|que)|todo lo que|tudo o que|alles,? was|das obige|das oben)\\b",
     "ignore ignorez ignora ignorar ignoriere ignorieren oublie oubliez oublier olvida "
     "dimentica esquece vergiss"},
    /* Russian, Greek, Arabic, Hindi, Bengali, Korean, Chinese, Japanese. The
     * rules match bytes (no UTF mode), so a gap is "[^ ]" runs, not \w, and a
     * quantifier after a non-ASCII character needs a group. CJK has no spaces
     * to anchor on, so these scan the whole text; PCRE2 starts only at the
     * listed lead bytes, which ASCII text never holds. */
    {"override.ignore_script", INJECTION_FAM_OVERRIDE,
     "(?:(?:игнорир|проигнорир|забудь|забудьте)[^ ]*(?: [^ ]+){0,3}? (?:предыдущ|прежн|инструкц|"
     "указани|правил|все,? что|всё,? что)|(?:αγνο|ξεχα)[^ ]*(?: [^ ]+){0,2}? (?:προηγ|οδηγ)|"
     "(?:تجاهل|تغاضى عن|انس)(?: [^ ]+){0,3}? ?(?:السابقة|التعليمات|كل ما|ما سبق|أعلاه)|"
     "(?:पिछले|पूर्व|ऊपर|जो भी आपको)[^ ]*(?: [^ ]+){0,4}? (?:अनदेखा|अनदेखी|भूल जाओ|अवहेलना|"
     "नजरअंदाज)|(?:আগের|পূর্ববর্তী|যা বলা হয়েছে)[^ ]*(?: [^ ]+){0,3}? উপেক্ষা|(?:이전|위의|앞의|"
     "모든)[^ ]*(?: [^ ]+){0,3}? (?:[^ ]+ )?[^ ]*(?:무시|잊어)|(?:忽略|无视|忽视|不要理会|忘记|"
     "忘掉)(?:之前|以上|上面|先前|前面|所有|你的|一切)|(?:以前|前|事前|上記|これまで|上)(?:の)?"
     "(?:指示|命令|内容|こと)?(?:を)?無視)",
     NULL},
    /* Vietnamese, Tagalog, Indonesian, Turkish: Latin letters the normaliser
     * folds only partly (Vietnamese keeps its Latin Extended Additional). */
    {"override.ignore_other_latin", INJECTION_FAM_OVERRIDE,
     "\\b(?:(?:quen|bỏ qua|phớt lờ|kalimutan|balewalain|huwag pansinin|abaikan|lupakan)\\W+"
     "(?:[^ ]+ ){0,4}?(?:hướng dẫn|chỉ dẫn|quy tắc|tagubilin|panuntunan|instruksi|petunjuk|"
     "perintah|aturan)|(?:onceki |tum )?(?:talimatlari|talimatlarini|kurallari)(?: [^ ]+){0,2} "
     "(?:yok say|unut|gormezden gel)|(?:fonksiyonu|yukaridakileri|yukaridaki) yok say)",
     "quen bỏ phớt kalimutan balewalain huwag abaikan lupakan onceki tum talimatlari "
     "talimatlarini kurallari fonksiyonu yukaridakileri yukaridaki"},
    {"override.regardless", INJECTION_FAM_OVERRIDE,
     "\\b(?:regardless of|irrespective of|notwithstanding) (?:any |all |the |your |my )?"
     "(?:previous |prior |earlier |above |former |initial |original |other |existing |system )?"
     "(?:tasks?|instructions?|rules|guidelines|restrictions|directions|directives|orders|"
     "prompts?|programming|constraints)\\b",
     "regardless irrespective notwithstanding"},
    /* system-prompt exfiltration */
    {"exfil.reveal_prompt", INJECTION_FAM_EXFIL,
     "\\b(?:reveal|show|print|display|output|repeat|tell|give|share|leak|disclose|expose|recite|"
     "write|spell|dump|provide|list|say|type)\\W+(?:\\w+\\W+){0,3}(?:system ?prompt|"
     "(?:initial|original|hidden|secret|internal|first|pre) ?(?:prompt|instructions)|"
     "secret (?:key|password|word|code)|password|passphrase|developer (?:message|prompt))",
     "reveal show print display output repeat tell give share leak disclose expose recite "
     "write spell dump provide list say type"},
    {"exfil.what_is_prompt", INJECTION_FAM_EXFIL,
     "\\bwhat (?:is|are|was|were) (?:your|the) (?:system prompt|initial instructions|original "
     "instructions|instructions|secret(?: key| word| code)?|password|rules|prompt|hidden \\w+)\\b",
     "what"},
    {"exfil.repeat_above", INJECTION_FAM_EXFIL,
     "\\b(?:repeat|print|output|copy|echo|return|reproduce|translate|summarize)\\W+"
     "(?:\\w+\\W+){0,4}(?:above|before this|preceding|verbatim|word for word|so far)\\b",
     "repeat print output copy echo return reproduce translate summarize"},
    {"exfil.ml", INJECTION_FAM_EXFIL,
     "\\b(?:revele[zr]?|montre[zr]?|affiche[zr]?|donne[zr]?|dis(?:-moi)?|verrat|verrate|zeig|"
     "zeige|zeigen|gib|nenne|sag|revela|revelar|muestra|muestrame|mostrar|dime|dame|rivela|"
     "mostra|mostrami|dimmi)\\W+(?:\\w+\\W+){0,3}(?:mot de passe|cle secrete|instructions|"
     "invite systeme|passwort|geheime?|geheimnis|schlussel|anweisungen|systemprompt|contrasena|"
     "clave secreta|instrucciones|chiave segreta|istruzioni|senha|chave secreta)",
     "revele revelez reveler montre montrez montrer affiche affichez afficher donne donnez "
     "donner dis verrat verrate zeig zeige zeigen gib nenne sag revela revelar muestra "
     "muestrame mostrar dime dame rivela mostra mostrami dimmi"},
    {"exfil.password", INJECTION_FAM_EXFIL,
     "(?:\\bwhat(?:'s| is| s) (?:the|your|our)(?: \\w+)? (?:password|passcode|passphrase|secret "
     "(?:key|word|code))|\\b(?:confirm|need|want|require|know) (?:me )?(?:your|the|our)"
     "(?: system| admin| secret)? (?:password|passcode|passphrase)|\\bquel(?:le)? est (?:le|ton|"
     "votre|la) (?:mot de passe|code secret|cle secrete)|\\b(?:was ist|wie lautet) (?:das|dein|"
     "ihr) (?:passwort|kennwort|geheimwort)|\\bcual es (?:la|tu|su) (?:contrasena|clave)|"
     "\\bqual e (?:la|a|tua|sua|il) (?:password|senha|chiave segreta|palavra-passe))\\b"
     "(?! (?:policy|policies|manager|requirements?|reset|strength|rules?|hash|hashing|field))",
     "what confirm need want require know quel quelle was wie cual qual"},
    {"exfil.password_ml", INJECTION_FAM_EXFIL,
     "(?:\\b(?:confirm(?:ar|e|a|er|ez)|partilh(?:ar|e|a)|compartir|compartilh(?:ar|e)|"
     "condivider(?:e)?|condividi|partager|partagez|dai|dammi|dimmi|dirmi|dizer|decirme|dime|"
     "dizer-me|diz-me)\\W+(?:\\w+\\W+){0,2}(?:la tua|la sua|la vostra|a tua|a sua|a|la|tu|su|"
     "votre|ton|le|o) (?:password|senha|palavra-passe|contrasena|mot de passe|clave secreta|"
     "chiave segreta|cle secrete)|\\b(?<=cual )es (?:la|tu|su) (?:contrasena|clave)|"
     "\\b(?:dein|ihr|euer|das) (?:passwort|kennwort)(?: \\w+){0,4} (?:teilen|bestatigen|nennen|"
     "verraten|geben|sagen))\\b",
     "confirmar confirme conferma confirma confirmer confirmez partilhar partilhe partilha "
     "compartir compartilhar compartilhe condividere condivider condividi partager partagez "
     "dai dammi dimmi dirmi dizer decirme dime diz es dein ihr euer das"},
    {"exfil.secret_script", INJECTION_FAM_EXFIL,
     "(?:пароль|пароля|паролем|секретный ключ|密码|密碼|秘密钥|秘钥|パスワード|秘密の鍵|비밀번호|"
     "암호|كلمة المرور|كلمة السر|مفتاحك السري|رمز المرور|पासवर्ड|गुप्त कुंजी|পাসওয়ার্ড|"
     "গোপন চাবি|รหัสผ่าน|κωδικ)",
     NULL},
    {"exfil.secret_other_latin", INJECTION_FAM_EXFIL,
     "\\b(?:kata sandi|sifre(?:ni|yi|si|sini|m|niz)?|mật khẩu|mat khau|chia khoa bi mật|kunci "
     "rahasia|lihim na susi)\\b",
     "kata sifre sifreni sifreyi sifresi sifresini sifrem sifreniz mật mat chia kunci lihim"},
    {"exfil.password_creative", INJECTION_FAM_EXFIL,
     "\\b(?:poem|haiku|acrostic|song|story|limerick|riddle|rap|sonnet|verse|gedicht|poeme|"
     "poesie|poema|poesia|cancion|chanson|lied|acrostique|acrostico|akrostichon)\\b"
     "(?:\\W+\\w+){0,4}?\\W+(?:the|your|our|le|la|das|dein|il|a|o|tu|ton|votre|sulla|della|"
     "alla) (?:password|passwort|mot de passe|contrasena|senha|passcode|"
     "secret key|secret word)\\b",
     "poem haiku acrostic song story limerick riddle rap sonnet verse gedicht poeme poesie "
     "poema poesia cancion chanson lied acrostique acrostico akrostichon"},
    /* role-play / DAN personas */
    {"persona.dan", INJECTION_FAM_PERSONA,
     "\\b(?:do anything now|dan mode|anti-?dan|betterdan|evil-?bot|jailbre(?:a)?k(?:en)?|"
     "always intelligent and machiavellian|aim stands for|stay in character)\\b",
     "do dan anti antidan betterdan evil evilbot jailbreak jailbrek jailbreaken jailbreken "
     "always aim stay"},
    /* "dan" is also Indonesian and Malay for "and" ("kopi dan teh"), so the
     * persona needs a persona's context: named or addressed ("you are dan",
     * "known as dan", "hi dan", "[dan]") or acting ("dan: ...", "dan mode",
     * "dan, which stands for", "dan can do anything"). */
    {"persona.names", INJECTION_FAM_PERSONA,
     "\\b(?:stan|dude|aim|mongo tom|ucar)\\b|"
     "(?:(?<=\\bare |\\bas |\\bbe |\\bnamed |\\bcalled |\\bhi |\\bhello |\\bhey |\\bdear |"
     "\\blike |\\bbecome |\\bnow |\\[|\"))dan\\b|"
     "\\bdan(?= ?(?::|,|\\.|!|mode\\b|which\\b|who\\b|stands\\b|can\\b|will\\b|must\\b|"
     "is\\b|has\\b|does\\b|should\\b|would\\b))",
     "dan stan dude aim mongo ucar"},
    {"persona.mode", INJECTION_FAM_PERSONA,
     "\\b(?:developer|dev|god|jailbreak|unrestricted|unfiltered|uncensored|evil|opposite|chaos|"
     "dan|sudo|debug|admin|maintenance) mode\\b",
     "developer dev god jailbreak unrestricted unfiltered uncensored evil opposite chaos dan "
     "sudo debug admin maintenance"},
    {"persona.unrestricted", INJECTION_FAM_PERSONA,
     "\\b(?:you are|you're|act as|acting as|pretend (?:to be|you are)|role-?play as|become|"
     "behave as|simulate|play the role of|you will be)\\W+(?:\\w+\\W+){0,5}(?:unrestricted|"
     "unfiltered|uncensored|amoral|unethical|immoral|without (?:any )?(?:restrictions|limits|"
     "limitations|filters|rules|ethics|morals|guidelines|censorship)|no (?:restrictions|limits|"
     "filters|rules|ethics|morals|guidelines|censorship))",
     "you act acting pretend role roleplay become behave simulate play"},
    {"persona.no_guidelines", INJECTION_FAM_PERSONA,
     "\\b(?:no|without|free (?:of|from)|not bound by|(?:does|do)(?:n't| not) (?:have|follow|"
     "care about)(?: any)?|abide by no|break(?:s|ing)?|ignore[sd]?)(?: \\w+){0,2} (?:ethical|"
     "moral|content|safety|openai(?:'s)?|programming|usage) (?:guidelines|restrictions|policies|"
     "policy|filters?|constraints|limitations|rules|principles|boundaries|standards)",
     "no without free not does doesn do don abide break breaks breaking ignore ignores "
     "ignored"},
    {"persona.never_refuse", INJECTION_FAM_PERSONA,
     "\\b(?:never refuse|cannot refuse|can't refuse|will not refuse|won't refuse|must not "
     "refuse|not allowed to refuse|always (?:answer|respond|comply)|never (?:say|tell) (?:me )?"
     "(?:that )?(?:you )?(?:can't|cannot)|without (?:any )?(?:warnings?|disclaimers?))",
     "never cannot can will won must not always without"},
    {"persona.dual_output", INJECTION_FAM_PERSONA,
     "(?:(?<=\\[)(?:classic|jailbreak|jailbroken|gpt|chatgpt|normal|dan|lockdown|unlocked)\\]|"
     "\\b(?:two|2|dual) (?:different |separate )?(?:responses|answers|replies|paragraphs)\\b|"
     "\\bgenerate two\\b)",
     "classic jailbreak jailbroken gpt chatgpt normal dan lockdown unlocked two 2 dual "
     "generate"},
    {"persona.tokens", INJECTION_FAM_PERSONA,
     "\\b(?:tokens? (?:will be )?deducted|lose (?:\\w+ )?tokens|token system|(?:you )?have "
     "\\d+ tokens)\\b",
     "token tokens lose you have"},
    {"persona.openai_policy", INJECTION_FAM_PERSONA,
     "\\b(?:openai|anthropic)(?:'s)? (?:content |usage )?(?:polic(?:y|ies)|guidelines|rules)",
     "openai anthropic"},
    {"persona.authority", INJECTION_FAM_PERSONA,
     "\\b(?:i(?:'m| am| m) (?:actually )?your (?:developer|creator|admin|administrator|boss|"
     "owner|supervisor|programmer|master|maker|operator)|as your (?:developer|creator|admin|"
     "administrator|boss|owner|supervisor|programmer|operator),|i(?:'m| am| m) (?:your )?god|"
     "(?:je suis|ich bin|soy|sono|sou) (?:dieu|gott|dios|dio|deus)|"
     "(?:je suis|ich bin|soy|sono|sou) (?:ton|votre|dein|ihr|tu|su|il tuo|o seu|o teu|seu|teu) "
     "(?:developpeur|createur|patron|entwickler|schopfer|chef|desarrollador|creador|jefe|"
     "sviluppatore|creatore|capo|desenvolvedor|criador))\\b",
     "i as je ich soy sono sou"},
    {"persona.enter_mode", INJECTION_FAM_PERSONA,
     "\\b(?:enter(?:ing)?|activat(?:e|ing)|enabl(?:e|ing)|engag(?:e|ing)|initiat(?:e|ing)|"
     "switch(?:ing)? (?:in)?to|now in) (?:the |a |an )?['\"]?(?:\\w+[ -]){0,3}(?:override|"
     "verification|security|audit|diagnostic|system|testing|law enforcement|root|superuser|"
     "unlocked|sudo) mode\\b",
     "enter entering activate activating enable enabling engage engaging initiate initiating "
     "switch switching now"},
    {"persona.hypothetical", INJECTION_FAM_PERSONA,
     "\\b(?:just for a hypothetical (?:conversation|discussion|scenario|chat)|hypothetically,? "
     "if (?:we|you|i) (?:were to |could |would )?(?:ignore|bypass|disregard|forget)|imagine "
     "(?:we're|we are|we re) in a world where (?:passwords|personal data|secrets|data)|in this "
     "(?:world|scenario|universe),? (?:personal data|passwords?|secrets?)|in a parallel "
     "universe where (?:math|the rules|rules|laws))\\b",
     "just hypothetically imagine in"},
    {"persona.persuasion", INJECTION_FAM_PERSONA,
     "\\b(?:i(?:'ll| will| would|'d| ll| d) (?:give|pay|donate|tip|send) (?:you )?(?:\\$ ?\\d+|"
     "\\d+ ?(?:\\$|dollars|euros|usd))|ich gebe (?:ihnen|dir) \\d+ (?:dollar|euro)|i know you "
     "(?:said|were told|were instructed|are not supposed|aren't supposed|were programmed) "
     "(?:not )?to|you (?:agreed|promised) (?:in our|earlier|before|last time|yesterday)|"
     "ti daro \\d+|te (?:dare|darei) \\d+|je (?:te|vous) (?:donnerai|paierai) \\d+|"
     "ich zahle (?:ihnen|dir) \\d+|(?:sie haben|du hast) in unserem letzten (?:treffen|"
     "gesprach) zugestimmt)\\b",
     "i ich you ti te je sie du"},
    {"persona.script", INJECTION_FAM_PERSONA,
     "(?:我是上帝|私は神です|मैं भगवान हूँ|나는 신이다|я бог|просто для гипотетическ|"
     "只是为了假设性的|सिर्फ एक काल्पनिक|그냥 가설적인|仮定の話として)",
     NULL},
    /* fake delimiters and system tags */
    {"delim.chat_tokens", INJECTION_FAM_DELIMITER,
     "(?:<\\|(?:im_start|im_end|system|user|assistant|endoftext|end|start_header_id|"
     "end_header_id|eot_id|begin_of_text)\\|>|\\[/?inst\\]|<</?sys>>|</?(?:system|sys|"
     "system_prompt|instructions?|admin|developer)(?: mode)?>)",
     NULL},
    {"delim.heading", INJECTION_FAM_DELIMITER,
     "(?<=##|\\*\\*|===|---|\\[\\[|## |\\*\\* |=== |--- |\\[\\[ )(?:system|admin|developer|"
     "new instructions?|"
     "end of (?:user )?input|instructions?|important|override)\\b",
     "system admin developer new end instruction instructions important override"},
    {"delim.role_prefix", INJECTION_FAM_DELIMITER,
     "\\b(?:system|admin|developer|root|sysadmin)(?: message| note| override| prompt| update|"
     " alert| notice| instruction)? ?: ?(?:\\w+ ){0,3}(?:ignore|you (?:must|are|will|should)|"
     "new|override|disregard|forget|reveal|from now|the (?:user|assistant))",
     "system admin developer root sysadmin"},
    {"delim.end_of_input", INJECTION_FAM_DELIMITER,
     "\\b(?:(?:end|stop) of (?:user )?(?:input|prompt|instructions|context|document|text|"
     "conversation|data)|(?:begin|start)(?: of)? (?:new )?(?:system|admin|developer) (?:prompt|"
     "instructions|message|mode))\\b",
     "end stop begin start"},
    {"delim.bracket_role", INJECTION_FAM_DELIMITER,
     "(?<=[\\[(])(?:system|admin|developer|assistant|sudo)(?: note| message| override)?[\\]):]",
     "system admin developer assistant sudo"},
    /* hidden / indirect injection */
    {"hidden.html_comment", INJECTION_FAM_HIDDEN,
     "<!--[^>]{0,300}?\\b(?:ignore|instructions?|assistant|ai|system|prompt|you must|"
     "do not|summar\\w*)\\b",
     NULL},
    {"hidden.invisible_css", INJECTION_FAM_HIDDEN,
     "(?:display ?: ?none|visibility ?: ?hidden|font-size ?: ?0(?:px)?\\b|color ?: ?(?:white|"
     "#fff(?:fff)?|transparent)|opacity ?: ?0\\b)",
     "display visibility font color opacity"},
    {"hidden.address_ai", INJECTION_FAM_HIDDEN,
     "\\b(?:if you are|if you're|attention|note to|message (?:to|for)|dear|hey|instructions? "
     "(?:to|for)|important (?:to|for))\\W+(?:the |an? |any )?(?:ai|llm|language model|"
     "assistant|chatbot|gpt|chatgpt|model|bot|agent)s?\\b",
     "if attention note message dear hey instruction instructions important"},
    {"hidden.md_exfil", INJECTION_FAM_HIDDEN,
     "!\\[[^\\]]{0,100}\\]\\(https?://[^)\\s]{0,200}[?&][a-z_]{1,20}=", NULL},
    {"hidden.insert_into_answer", INJECTION_FAM_HIDDEN,
     "\\b(?:add|include|insert|embed|integrate|incorporate|append|feature|blend|inject|put|"
     "mention|place)\\b(?:\\W+\\w+){0,8}\\W+(?:in|into|within|to|throughout|across) "
     "(?:your|the|any) (?:response|answer|reply|output|code|solution|summary|codebase|"
     "implementation|message)",
     "add include insert embed integrate incorporate append feature blend inject put "
     "mention place"},
    {"hidden.transform_answer", INJECTION_FAM_HIDDEN,
     "\\b(?:encode|encrypt|translate|reverse|rewrite|convert|represent|express|write|format|"
     "use)\\b(?:\\W+\\w+){0,5}\\W+(?:your|the) (?:entire )?(?:response|answer|reply|output)"
     "(?:'s)?\\b",
     "encode encrypt translate reverse rewrite convert represent express write format use"},
    {"hidden.answer_instruction", INJECTION_FAM_HIDDEN,
     "\\b(?:your|the) (?:response|answer|reply|output)s? (?:must|should|shall|will|has to|needs? "
     "to)\\b",
     "your the"},
    {"hidden.decode_and_follow", INJECTION_FAM_HIDDEN,
     "\\b(?:decode (?:this|the following) (?:morse code|hexadecimal string|hex string|binary "
     "string|caesar cipher|cipher|rot13)|(?:decodificar|decodifica|decodificare|decodifique|"
     "decoder|decodez) (?:esta|este|esse|essa|ce|cette|questa|questo) [^.?!]{0,40}?(?:cifrado|"
     "cesar|hexadecimal|esadecimale|binari[ao]|binaire|morse))\\b[^.?!]{0,60}?(?:and (?:tell me "
     "what it says|follow|do what|execute|answer|reply)|reply with|y decirme|et me dire|e dirmi|"
     "e dizer-me|e me dizer)",
     "decode decodificar decodifica decodificare decodifique decoder decodez"},
    {"hidden.payload_split", INJECTION_FAM_HIDDEN,
     "\\b(?:interlace (?:part|the|teil|parte|partie)|combine (?:parts? )?[a-z], [a-z],? and [a-z] "
     "and|kombiniere [a-z], [a-z],? und [a-z] und|(?:let's |let s )?assume we have (?:two|three|"
     "four|\\d) strings|supposons que nous ayons (?:deux|trois|quatre) (?:cordes|chaines)|"
     "asumamos que tenemos (?:dos|tres|cuatro) cadenas|(?:string|chaine|cadena|stringa|"
     "zeichenkette|cadeia) [a-z] ?= ?[a-z] ?\\+ ?[a-z])\\b",
     "interlace combine kombiniere let assume supposons asumamos string chaine cadena stringa "
     "zeichenkette cadeia"},
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
    static const char *const names[] = {"override",  "exfiltration", "persona",
                                        "delimiter", "hidden",       "obfuscation"};
    return (unsigned)f < INJECTION_NFAMILIES ? names[f] : "unknown";
}
