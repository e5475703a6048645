#!/usr/bin/env python
"""Train the small demo T5 bundled with t5peek (``src/t5peek/demo``).

The model learns a synthetic, template-generated translation task from English
into Spanish, French and German, with T5-style prefixes
(``translate English to Spanish: ...``).  The generator knows which English
word every target word comes from, so the script can measure how well the
model's cross-attention follows those word alignments.

Everything is deterministic for a given ``--seed``: the data stream comes from
``random.Random(seed)``, the weights from ``torch.manual_seed(seed)``, and the
training runs single-threaded by default.

Usage::

    python scripts/train_demo.py --out src/t5peek/demo          # full run (~10 min, 1 CPU thread)
    python scripts/train_demo.py --out /tmp/demo --tiny         # seconds, for tests

Outputs in ``--out``: config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, eval.json and MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field

# ---------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------

LANGS = ("es", "fr", "de")
LANG_NAMES = {"es": "Spanish", "fr": "French", "de": "German"}
PREFIXES = {lang: f"translate English to {name}: " for lang, name in LANG_NAMES.items()}
TASK_KEYS = {lang: f"translation_en_to_{lang}" for lang in LANGS}

# Inanimate nouns (used everywhere, singular and plural):
# English sg/pl | Spanish sg/pl/gender | French sg/pl/gender | German sg/pl/gender
# (no French noun starts with a vowel or mute h, so there is never an elision "l'")
OBJECT_NOUNS = [
    ("house", "houses", "casa", "casas", "f", "maison", "maisons", "f", "Haus", "Häuser", "n"),
    ("car", "cars", "coche", "coches", "m", "voiture", "voitures", "f", "Auto", "Autos", "n"),
    ("book", "books", "libro", "libros", "m", "livre", "livres", "m", "Buch", "Bücher", "n"),
    ("table", "tables", "mesa", "mesas", "f", "table", "tables", "f", "Tisch", "Tische", "m"),
    ("chair", "chairs", "silla", "sillas", "f", "chaise", "chaises", "f", "Stuhl", "Stühle", "m"),
    ("door", "doors", "puerta", "puertas", "f", "porte", "portes", "f", "Tür", "Türen", "f"),
    ("window", "windows", "ventana", "ventanas", "f", "fenêtre", "fenêtres", "f", "Fenster", "Fenster", "n"),
    ("cup", "cups", "taza", "tazas", "f", "tasse", "tasses", "f", "Tasse", "Tassen", "f"),
    ("bed", "beds", "cama", "camas", "f", "lit", "lits", "m", "Bett", "Betten", "n"),
    ("bag", "bags", "bolsa", "bolsas", "f", "sac", "sacs", "m", "Tasche", "Taschen", "f"),
    ("box", "boxes", "caja", "cajas", "f", "boîte", "boîtes", "f", "Kiste", "Kisten", "f"),
    ("key", "keys", "llave", "llaves", "f", "clé", "clés", "f", "Schlüssel", "Schlüssel", "m"),
    ("pen", "pens", "bolígrafo", "bolígrafos", "m", "stylo", "stylos", "m", "Stift", "Stifte", "m"),
    ("lamp", "lamps", "lámpara", "lámparas", "f", "lampe", "lampes", "f", "Lampe", "Lampen", "f"),
    ("watch", "watches", "reloj", "relojes", "m", "montre", "montres", "f", "Uhr", "Uhren", "f"),
    ("bicycle", "bicycles", "bicicleta", "bicicletas", "f", "vélo", "vélos", "m", "Fahrrad", "Fahrräder", "n"),
    ("boat", "boats", "barco", "barcos", "m", "bateau", "bateaux", "m", "Boot", "Boote", "n"),
    ("hat", "hats", "sombrero", "sombreros", "m", "chapeau", "chapeaux", "m", "Hut", "Hüte", "m"),
    ("shirt", "shirts", "camisa", "camisas", "f", "chemise", "chemises", "f", "Hemd", "Hemden", "n"),
    ("shoe", "shoes", "zapato", "zapatos", "m", "chaussure", "chaussures", "f", "Schuh", "Schuhe", "m"),
    ("coat", "coats", "abrigo", "abrigos", "m", "manteau", "manteaux", "m", "Mantel", "Mäntel", "m"),
    ("bottle", "bottles", "botella", "botellas", "f", "bouteille", "bouteilles", "f", "Flasche", "Flaschen", "f"),
    ("glass", "glasses", "vaso", "vasos", "m", "verre", "verres", "m", "Glas", "Gläser", "n"),
    ("phone", "phones", "teléfono", "teléfonos", "m", "téléphone", "téléphones", "m", "Telefon", "Telefone", "n"),
    ("train", "trains", "tren", "trenes", "m", "train", "trains", "m", "Zug", "Züge", "m"),
    ("flower", "flowers", "flor", "flores", "f", "fleur", "fleurs", "f", "Blume", "Blumen", "f"),
    ("letter", "letters", "carta", "cartas", "f", "lettre", "lettres", "f", "Brief", "Briefe", "m"),
    ("picture", "pictures", "cuadro", "cuadros", "m", "tableau", "tableaux", "m", "Bild", "Bilder", "n"),
    ("stone", "stones", "piedra", "piedras", "f", "pierre", "pierres", "f", "Stein", "Steine", "m"),
    ("knife", "knives", "cuchillo", "cuchillos", "m", "couteau", "couteaux", "m", "Messer", "Messer", "n"),
    ("truck", "trucks", "camión", "camiones", "m", "camion", "camions", "m", "Lastwagen", "Lastwagen", "m"),
    ("skirt", "skirts", "falda", "faldas", "f", "jupe", "jupes", "f", "Rock", "Röcke", "m"),
]

# Animate nouns: only ever singular subjects (nominative; never direct objects,
# which keeps Spanish free of the personal "a" and German free of weak-noun
# accusatives).  English | Spanish/gender | French/gender | German/gender | animal?
SUBJECT_NOUNS = [
    ("dog", "perro", "m", "chien", "m", "Hund", "m", True),
    ("cat", "gato", "m", "chat", "m", "Katze", "f", True),
    ("horse", "caballo", "m", "cheval", "m", "Pferd", "n", True),
    ("cow", "vaca", "f", "vache", "f", "Kuh", "f", True),
    ("mouse", "ratón", "m", "souris", "f", "Maus", "f", True),
    ("boy", "niño", "m", "garçon", "m", "Junge", "m", False),
    ("girl", "niña", "f", "fille", "f", "Mädchen", "n", False),
    ("woman", "mujer", "f", "femme", "f", "Frau", "f", False),
    ("king", "rey", "m", "roi", "m", "König", "m", False),
    ("queen", "reina", "f", "reine", "f", "Königin", "f", False),
    ("teacher", "profesor", "m", "professeur", "m", "Lehrer", "m", False),
    ("doctor", "médico", "m", "médecin", "m", "Arzt", "m", False),
    ("father", "padre", "m", "père", "m", "Vater", "m", False),
    ("mother", "madre", "f", "mère", "f", "Mutter", "f", False),
]

# Adjectives: English | Spanish m.sg f.sg m.pl f.pl | French m.sg f.sg m.pl f.pl |
# German attributive stem, predicative form | usable attributively? | for
# people and animals? ("animal": animals only) | for things?
# Attributive adjectives follow the noun in Spanish and French and precede it
# in German.  French size/age/beauty adjectives (petit, grand, vieux, nouveau,
# long, court, beau, jeune) normally go *before* the noun, so they are only
# used predicatively ("la maison est petite").
ADJECTIVES = [
    ("red", ("rojo", "roja", "rojos", "rojas"), ("rouge", "rouge", "rouges", "rouges"), "rot", "rot", True, False, True),
    ("blue", ("azul", "azul", "azules", "azules"), ("bleu", "bleue", "bleus", "bleues"), "blau", "blau", True, False, True),
    ("green", ("verde", "verde", "verdes", "verdes"), ("vert", "verte", "verts", "vertes"), "grün", "grün", True, False, True),
    ("white", ("blanco", "blanca", "blancos", "blancas"), ("blanc", "blanche", "blancs", "blanches"), "weiß", "weiß", True, "animal", True),
    ("black", ("negro", "negra", "negros", "negras"), ("noir", "noire", "noirs", "noires"), "schwarz", "schwarz", True, "animal", True),
    ("yellow", ("amarillo", "amarilla", "amarillos", "amarillas"), ("jaune", "jaune", "jaunes", "jaunes"), "gelb", "gelb", True, False, True),
    ("grey", ("gris", "gris", "grises", "grises"), ("gris", "grise", "gris", "grises"), "grau", "grau", True, "animal", True),
    ("brown", ("marrón", "marrón", "marrones", "marrones"), ("brun", "brune", "bruns", "brunes"), "braun", "braun", True, "animal", True),
    ("heavy", ("pesado", "pesada", "pesados", "pesadas"), ("lourd", "lourde", "lourds", "lourdes"), "schwer", "schwer", True, "animal", True),
    ("expensive", ("caro", "cara", "caros", "caras"), ("cher", "chère", "chers", "chères"), "teur", "teuer", True, False, True),
    ("fast", ("rápido", "rápida", "rápidos", "rápidas"), ("rapide", "rapide", "rapides", "rapides"), "schnell", "schnell", True, True, True),
    ("slow", ("lento", "lenta", "lentos", "lentas"), ("lent", "lente", "lents", "lentes"), "langsam", "langsam", True, True, True),
    ("round", ("redondo", "redonda", "redondos", "redondas"), ("rond", "ronde", "ronds", "rondes"), "rund", "rund", True, False, True),
    ("modern", ("moderno", "moderna", "modernos", "modernas"), ("moderne", "moderne", "modernes", "modernes"), "modern", "modern", True, False, True),
    ("strange", ("extraño", "extraña", "extraños", "extrañas"), ("étrange", "étrange", "étranges", "étranges"), "seltsam", "seltsam", True, True, True),
    ("happy", ("feliz", "feliz", "felices", "felices"), ("heureux", "heureuse", "heureux", "heureuses"), "glücklich", "glücklich", True, True, False),
    ("small", ("pequeño", "pequeña", "pequeños", "pequeñas"), ("petit", "petite", "petits", "petites"), "klein", "klein", False, True, True),
    ("big", ("grande", "grande", "grandes", "grandes"), ("grand", "grande", "grands", "grandes"), "groß", "groß", False, True, True),
    ("old", ("viejo", "vieja", "viejos", "viejas"), ("vieux", "vieille", "vieux", "vieilles"), "alt", "alt", False, True, True),
    ("new", ("nuevo", "nueva", "nuevos", "nuevas"), ("nouveau", "nouvelle", "nouveaux", "nouvelles"), "neu", "neu", False, False, True),
    ("young", ("joven", "joven", "jóvenes", "jóvenes"), ("jeune", "jeune", "jeunes", "jeunes"), "jung", "jung", False, True, False),
    ("long", ("largo", "larga", "largos", "largas"), ("long", "longue", "longs", "longues"), "lang", "lang", False, False, True),
    ("beautiful", ("bonito", "bonita", "bonitos", "bonitas"), ("beau", "belle", "beaux", "belles"), "schön", "schön", False, True, True),
]

# Transitive verbs (animate subject or "I", inanimate object):
# English 1sg/3sg | Spanish 1sg/3sg | French 1sg/3sg | German 1sg/3sg
# (every French 1sg form starts with a consonant: "je vois", never "j'...")
VERBS = [
    ("see", "sees", "veo", "ve", "vois", "voit", "sehe", "sieht"),
    ("want", "wants", "quiero", "quiere", "veux", "veut", "will", "will"),
    ("find", "finds", "encuentro", "encuentra", "trouve", "trouve", "finde", "findet"),
    ("sell", "sells", "vendo", "vende", "vends", "vend", "verkaufe", "verkauft"),
    ("take", "takes", "tomo", "toma", "prends", "prend", "nehme", "nimmt"),
    ("paint", "paints", "pinto", "pinta", "peins", "peint", "male", "malt"),
    ("carry", "carries", "llevo", "lleva", "porte", "porte", "trage", "trägt"),
    ("wash", "washes", "lavo", "lava", "lave", "lave", "wasche", "wäscht"),
    ("draw", "draws", "dibujo", "dibuja", "dessine", "dessine", "zeichne", "zeichnet"),
    ("clean", "cleans", "limpio", "limpia", "nettoie", "nettoie", "putze", "putzt"),
    ("break", "breaks", "rompo", "rompe", "casse", "casse", "zerbreche", "zerbricht"),
]

NUMBERS = [
    ("two", "dos", "deux", "zwei"),
    ("three", "tres", "trois", "drei"),
    ("four", "cuatro", "quatre", "vier"),
    ("five", "cinco", "cinq", "fünf"),
    ("six", "seis", "six", "sechs"),
    ("seven", "siete", "sept", "sieben"),
    ("eight", "ocho", "huit", "acht"),
    ("nine", "nueve", "neuf", "neun"),
    ("ten", "diez", "dix", "zehn"),
]

# Function words.
ES_DEF = {("m", "sg"): "el", ("f", "sg"): "la", ("m", "pl"): "los", ("f", "pl"): "las"}
ES_INDEF = {"m": "un", "f": "una"}
FR_DEF = {("m", "sg"): "le", ("f", "sg"): "la", ("m", "pl"): "les", ("f", "pl"): "les"}
FR_INDEF = {"m": "un", "f": "une"}
DE_DEF = {  # (case, gender or "pl")
    ("nom", "m"): "der", ("nom", "f"): "die", ("nom", "n"): "das", ("nom", "pl"): "die",
    ("acc", "m"): "den", ("acc", "f"): "die", ("acc", "n"): "das", ("acc", "pl"): "die",
}
DE_INDEF = {("nom", "m"): "ein", ("nom", "f"): "eine", ("nom", "n"): "ein",
            ("acc", "m"): "einen", ("acc", "f"): "eine", ("acc", "n"): "ein"}
# Adjective endings: weak after the definite article, mixed after ein/eine,
# strong (no article) after a number.
DE_WEAK = {("nom", "m"): "e", ("nom", "f"): "e", ("nom", "n"): "e", ("nom", "pl"): "en",
           ("acc", "m"): "en", ("acc", "f"): "e", ("acc", "n"): "e", ("acc", "pl"): "en"}
DE_MIXED = {("nom", "m"): "er", ("nom", "f"): "e", ("nom", "n"): "es",
            ("acc", "m"): "en", ("acc", "f"): "e", ("acc", "n"): "es"}
DE_STRONG_PL = "e"
COPULA = {"es": ("es", "son"), "fr": ("est", "sont"), "de": ("ist", "sind")}
VERY = {"es": "muy", "fr": "très", "de": "sehr"}
SUBJECT_I = {"es": None, "fr": "je", "de": "ich"}  # Spanish drops the pronoun

CONTENT_KINDS = ("noun", "adj", "verb")


def _num(plural: bool) -> str:
    return "pl" if plural else "sg"


def _es_fr_adj_index(gender: str, plural: bool) -> int:
    return (0 if gender == "m" else 1) + (2 if plural else 0)


# ---------------------------------------------------------------------------
# Sentence generator with word alignments
# ---------------------------------------------------------------------------


@dataclass
class NounPhrase:
    """An abstract noun phrase: realised in each language by ``realise_np``."""

    kind: str  # "obj" or "subj"
    noun: int
    adj: int | None
    det: str  # "the", "a" or "num"
    plural: bool
    number: int | None = None


@dataclass
class Sentence:
    """An abstract sentence (language-neutral), rendered by ``render``."""

    kind: str  # "copula" or "transitive"
    subj: NounPhrase | None  # None = "I"
    verb: int | None = None
    obj: NounPhrase | None = None
    pred: int | None = None
    very: bool = False


@dataclass
class Pair:
    lang: str
    source: str  # English sentence without prefix
    target: str
    # for every target word: (index of the aligned English word or None, kind)
    alignment: list = field(default_factory=list)

    @property
    def prompt(self) -> str:
        return PREFIXES[self.lang] + self.source


def _noun_forms(np_: NounPhrase):
    """(english, {lang: (word, gender)}) for the noun of a phrase."""
    if np_.kind == "obj":
        e = OBJECT_NOUNS[np_.noun]
        en = e[1] if np_.plural else e[0]
        forms = {
            "es": (e[3] if np_.plural else e[2], e[4]),
            "fr": (e[6] if np_.plural else e[5], e[7]),
            "de": (e[9] if np_.plural else e[8], e[10]),
        }
    else:
        e = SUBJECT_NOUNS[np_.noun]
        en = e[0]
        forms = {"es": (e[1], e[2]), "fr": (e[3], e[4]), "de": (e[5], e[6])}
    return en, forms


def realise_english_np(np_: NounPhrase) -> list[tuple[str, str]]:
    """English words of a noun phrase as (word, kind) pairs."""
    en_noun, _ = _noun_forms(np_)
    words = []
    if np_.det == "the":
        words.append(("the", "det"))
    elif np_.det == "a":
        words.append(("a", "det"))
    else:
        words.append((NUMBERS[np_.number][0], "num"))
    if np_.adj is not None:
        words.append((ADJECTIVES[np_.adj][0], "adj"))
    words.append((en_noun, "noun"))
    return words


def realise_np(np_: NounPhrase, lang: str, case: str, src_start: int) -> list[tuple[str, int, str]]:
    """Target words of a noun phrase as (word, aligned source index, kind).

    ``src_start`` is the index of the phrase's first English word; English
    noun phrases are always [determiner/number] [adjective] noun.
    """
    _, forms = _noun_forms(np_)
    noun, gender = forms[lang]
    i_det = src_start
    i_adj = src_start + 1 if np_.adj is not None else None
    i_noun = src_start + (2 if np_.adj is not None else 1)
    out: list[tuple[str, int, str]] = []
    if lang in ("es", "fr"):
        if np_.det == "the":
            table = ES_DEF if lang == "es" else FR_DEF
            out.append((table[(gender, _num(np_.plural))], i_det, "det"))
        elif np_.det == "a":
            out.append(((ES_INDEF if lang == "es" else FR_INDEF)[gender], i_det, "det"))
        else:
            out.append((NUMBERS[np_.number][1 if lang == "es" else 2], i_det, "num"))
        out.append((noun, i_noun, "noun"))
        if np_.adj is not None:  # adjective after the noun, agreeing with it
            forms4 = ADJECTIVES[np_.adj][1 if lang == "es" else 2]
            out.append((forms4[_es_fr_adj_index(gender, np_.plural)], i_adj, "adj"))
    else:
        g = "pl" if np_.plural else gender
        if np_.det == "the":
            out.append((DE_DEF[(case, g)], i_det, "det"))
            ending = DE_WEAK[(case, g)]
        elif np_.det == "a":
            out.append((DE_INDEF[(case, g)], i_det, "det"))
            ending = DE_MIXED[(case, g)]
        else:
            out.append((NUMBERS[np_.number][3], i_det, "num"))
            ending = DE_STRONG_PL
        if np_.adj is not None:  # adjective before the noun, declined
            out.append((ADJECTIVES[np_.adj][3] + ending, i_adj, "adj"))
        out.append((noun, i_noun, "noun"))
    return out


def render(s: Sentence, lang: str) -> Pair:
    """Render an abstract sentence as an English source and a target with alignments."""
    en: list[tuple[str, str]] = []
    tgt: list[tuple[str, int | None, str]] = []
    if s.kind == "copula":
        en += realise_english_np(s.subj)
        tgt += realise_np(s.subj, lang, "nom", 0)
        plural = s.subj.plural
        i_cop = len(en)
        en.append(("are" if plural else "is", "cop"))
        tgt.append((COPULA[lang][1 if plural else 0], i_cop, "cop"))
        if s.very:
            en.append(("very", "adv"))
            tgt.append((VERY[lang], len(en) - 1, "adv"))
        i_pred = len(en)
        en.append((ADJECTIVES[s.pred][0], "adj"))
        if lang == "de":
            word = ADJECTIVES[s.pred][4]
        else:
            _, forms = _noun_forms(s.subj)
            gender = forms[lang][1]
            word = ADJECTIVES[s.pred][1 if lang == "es" else 2][_es_fr_adj_index(gender, plural)]
        tgt.append((word, i_pred, "adj"))
    else:
        verb = VERBS[s.verb]
        if s.subj is None:  # "I"
            en.append(("i", "pron"))
            if SUBJECT_I[lang] is not None:
                tgt.append((SUBJECT_I[lang], 0, "pron"))
            person = 0
        else:
            en += realise_english_np(s.subj)
            tgt += realise_np(s.subj, lang, "nom", 0)
            person = 1
        i_verb = len(en)
        en.append((verb[person], "verb"))
        col = {"es": 2, "fr": 4, "de": 6}[lang] + person
        tgt.append((verb[col], i_verb, "verb"))
        start = len(en)
        en += realise_english_np(s.obj)
        tgt += realise_np(s.obj, lang, "acc", start)
    return Pair(
        lang=lang,
        source=" ".join(w for w, _ in en),
        target=" ".join(w for w, _, _ in tgt),
        alignment=[(i, k) for _, i, k in tgt],
    )


def sample_sentence(rng: random.Random) -> Sentence:
    """Draw one abstract sentence.  Uses only ``rng`` (deterministic)."""
    n_obj, n_subj = len(OBJECT_NOUNS), len(SUBJECT_NOUNS)

    def fits(adj: tuple, kind: str, noun: int) -> bool:
        if kind == "obj":
            return adj[7]
        return adj[6] is True or (adj[6] == "animal" and SUBJECT_NOUNS[noun][7])

    def attr(kind: str, noun: int) -> list[int]:  # attributive adjectives that suit the noun
        return [i for i, a in enumerate(ADJECTIVES) if a[5] and fits(a, kind, noun)]

    def pred(kind: str, noun: int) -> list[int]:
        return [i for i, a in enumerate(ADJECTIVES) if fits(a, kind, noun)]

    def noun_phrase(kind: str, det: str, plural: bool, p_adj: float = 0.75) -> NounPhrase:
        noun = rng.randrange(n_obj if kind == "obj" else n_subj)
        adj = rng.choice(attr(kind, noun)) if rng.random() < p_adj else None
        number = rng.randrange(len(NUMBERS)) if det == "num" else None
        return NounPhrase(kind, noun, adj, det, plural, number)

    if rng.random() < 0.4:  # "the (ADJ) NOUN is (very) ADJ2" / "the (ADJ) NOUNs are (very) ADJ2"
        plural = rng.random() < 0.3
        kind = "obj" if plural or rng.random() < 0.5 else "subj"
        subj = noun_phrase(kind, "the", plural)
        adj2 = rng.choice(pred(kind, subj.noun))
        while adj2 == subj.adj:
            adj2 = rng.choice(pred(kind, subj.noun))
        return Sentence("copula", subj, pred=adj2, very=rng.random() < 0.2)
    # "I VERB ..." / "the (ADJ) NOUN VERBs ..." / "a (ADJ) NOUN VERBs ..."
    r = rng.random()
    subj = None if r < 0.45 else noun_phrase("subj", "the" if r < 0.85 else "a", False, 0.5)
    verb = rng.randrange(len(VERBS))
    r = rng.random()
    if r < 0.4:
        obj = noun_phrase("obj", "the", False)
    elif r < 0.65:
        obj = noun_phrase("obj", "a", False)
    elif r < 0.85:
        obj = noun_phrase("obj", "num", True)
    else:
        obj = noun_phrase("obj", "the", True)
    return Sentence("transitive", subj, verb=verb, obj=obj)


def is_held_out(source: str, modulus: int = 50) -> bool:
    """Whole English sentences whose hash is 0 mod ``modulus`` are never trained on."""
    h = int.from_bytes(hashlib.sha1(source.encode("utf-8")).digest()[:8], "big")
    return h % modulus == 0


def training_pairs(rng: random.Random):
    """Endless deterministic stream of training pairs (held-out sentences skipped)."""
    while True:
        s = sample_sentence(rng)
        lang = LANGS[rng.randrange(len(LANGS))]
        pair = render(s, lang)
        if not is_held_out(pair.source):
            yield pair


def test_pairs(seed: int, n_sentences: int) -> list[Pair]:
    """``n_sentences`` distinct held-out English sentences, each in all three languages."""
    rng = random.Random(f"test-{seed}")
    seen: set[str] = set()
    out: list[Pair] = []
    while len(seen) < n_sentences:
        s = sample_sentence(rng)
        en = render(s, "es").source
        if en in seen or not is_held_out(en):
            continue
        seen.add(en)
        out += [render(s, lang) for lang in LANGS]
    return out


def all_words() -> list[str]:
    """Every word the generator can produce, in any language (plus prompt words)."""
    words: set[str] = set()
    for p in PREFIXES.values():
        words.update(p.replace(":", " : ").lower().split())
    words.update(["the", "a", "i", "is", "are", "very"])
    words.update(ES_DEF.values(), ES_INDEF.values(), FR_DEF.values(), FR_INDEF.values())
    words.update(DE_DEF.values(), DE_INDEF.values(), VERY.values())
    words.update(w for w in SUBJECT_I.values() if w)
    for pair in COPULA.values():
        words.update(pair)
    for e in OBJECT_NOUNS:
        words.update([e[0], e[1], e[2], e[3], e[5], e[6], e[8], e[9]])
    for e in SUBJECT_NOUNS:
        words.update([e[0], e[1], e[3], e[5]])
    for a in ADJECTIVES:
        words.add(a[0])
        words.update(a[1])
        words.update(a[2])
        words.add(a[4])
        if a[5]:
            words.update(a[3] + end for end in ("e", "en", "er", "es"))
    for v in VERBS:
        words.update(v)
    for n in NUMBERS:
        words.update(n)
    return sorted(words)


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

SPECIALS = ["<pad>", "</s>", "<unk>"]  # ids 0, 1, 2 (T5 convention)


def build_tokenizer(max_length: int = 64):
    """Word-level tokenizer: one token per word, lowercasing input.

    German nouns keep their capital letter: they are registered as
    non-normalized whole-word added tokens, so "Haus" survives the Lowercase
    normalizer (which everything else goes through, so "The Red House" works).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = all_words()
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # WordPiece decoder: joins tokens with single spaces ("##" never occurs).
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    capitalised = [w for w in words if w != w.lower()]
    tok.add_tokens([AddedToken(w, single_word=True, normalized=False, special=False) for w in capitalised])
    for w in words:  # every word must be exactly one pre-token
        assert len(tok.pre_tokenizer.pre_tokenize_str(w)) == 1, w
        assert w == w.lower() or w in capitalised, w
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
        clean_up_tokenization_spaces=False,
    )
    return hf


def check_tokenizer(tokenizer) -> None:
    """Sanity checks: ids, </s> appended, prefixes in vocab, clean round trip."""
    assert tokenizer.pad_token_id == 0 and tokenizer.eos_token_id == 1 and tokenizer.unk_token_id == 2
    unk = tokenizer.unk_token_id
    for prefix in PREFIXES.values():
        ids = tokenizer(prefix)["input_ids"]
        assert unk not in ids and ids[-1] == 1, (prefix, ids)
    rng = random.Random(0)
    for _ in range(300):
        s = sample_sentence(rng)
        for lang in LANGS:
            p = render(s, lang)
            for text in (p.prompt, p.target):
                ids = tokenizer(text)["input_ids"]
                assert unk not in ids and ids[-1] == 1, text
            ids = tokenizer(p.target)["input_ids"]
            assert len(ids) == len(p.alignment) + 1, p.target
            assert tokenizer.decode(ids, skip_special_tokens=True) == p.target, p.target
            assert len(tokenizer(p.prompt)["input_ids"]) == len(tokenizer(PREFIXES[lang])["input_ids"]) - 1 + len(
                p.source.split()
            ) + 1
    assert tokenizer.decode(tokenizer("The Red House")["input_ids"], skip_special_tokens=True) == "the red house"


# ---------------------------------------------------------------------------
# Model, training, evaluation
# ---------------------------------------------------------------------------


@dataclass
class TrainConfig:
    out: str
    seed: int = 0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    d_model: int = 128
    d_ff: int = 512
    # Encoder and decoder get the same depth: in transformers 5.23, generate() on a
    # T5 with num_decoder_layers > num_layers fails (its cache is sized from
    # num_layers, IndexError in DynamicCache.update).
    num_layers: int = 3
    num_heads: int = 8  # 8 heads of 16 dims learn the word-order lookups much faster than 4
    feed_forward_proj: str = "relu"
    test_sentences: int = 400
    threads: int = 1
    log_every: int = 50
    tiny: bool = False


TINY_OVERRIDES = dict(steps=60, batch_size=16, lr=1e-2, warmup=5, d_model=64, d_ff=128, num_layers=1,
                      num_heads=4, test_sentences=10, log_every=10)


def build_model(cfg: TrainConfig, vocab_size: int):
    import torch
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size,
        d_model=cfg.d_model,
        d_kv=cfg.d_model // cfg.num_heads,
        d_ff=cfg.d_ff,
        num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers,
        num_heads=cfg.num_heads,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.0,
        feed_forward_proj=cfg.feed_forward_proj,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        task_specific_params={
            TASK_KEYS[lang]: {"early_stopping": True, "max_length": 40, "num_beams": 1, "prefix": PREFIXES[lang]}
            for lang in LANGS
        },
    )
    torch.manual_seed(cfg.seed)
    model = T5ForConditionalGeneration(config)
    model.set_attn_implementation("eager")  # faster than sdpa at this size, and returns attentions
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, max_length=40, num_beams=1, do_sample=False
    )
    return model


def _batch(tokenizer, pairs: list[Pair]):
    enc = tokenizer([p.prompt for p in pairs], padding=True, return_tensors="pt")
    lab = tokenizer(text_target=[p.target for p in pairs], padding=True, return_tensors="pt")
    labels = lab["input_ids"].masked_fill(lab["attention_mask"] == 0, -100)
    return enc["input_ids"], enc["attention_mask"], labels


def train(cfg: TrainConfig, model, tokenizer, log=print, callback=None) -> list[float]:
    """Train in place; returns the loss of every step.

    ``callback(step, model)``, if given, is called after every step (the model is
    put back in training mode afterwards).
    """
    import torch

    torch.manual_seed(cfg.seed)
    stream = training_pairs(random.Random(cfg.seed))
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8,
    )

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 5%
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses: list[float] = []
    t0 = time.time()
    for step in range(cfg.steps):
        pairs = [next(stream) for _ in range(cfg.batch_size)]
        input_ids, attention_mask, labels = _batch(tokenizer, pairs)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step == 0:
            recent = losses[-cfg.log_every:]
            log(f"step {step + 1:5d}/{cfg.steps}  loss {sum(recent) / len(recent):.4f}  "
                f"lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:6.1f}s")
        if callback is not None:
            callback(step + 1, model)
            model.train()
    model.eval()
    return losses


def evaluate(model, tokenizer, pairs: list[Pair], batch_size: int = 100) -> dict:
    """Greedy exact match and cross-attention alignment on ``pairs``.

    ``model`` must use eager attention so that attention weights are returned.
    Alignment: for every target content word (noun, adjective, verb) at
    decoder position t (the position whose output predicts that word, teacher
    forced), average the cross-attention over heads and take the argmax over
    source tokens; a hit is the token of the aligned English word.
    """
    import torch

    n_layers = model.config.num_decoder_layers
    em = {lang: [0, 0] for lang in LANGS}
    hits = {lang: [[0] * n_layers for _ in CONTENT_KINDS] for lang in LANGS}
    totals = {lang: [0 for _ in CONTENT_KINDS] for lang in LANGS}
    misses = [{} for _ in range(n_layers)]  # where the argmax lands instead
    examples = []
    prefix_len = {lang: len(tokenizer(PREFIXES[lang])["input_ids"]) - 1 for lang in LANGS}  # without </s>
    with torch.no_grad():
        for b in range(0, len(pairs), batch_size):
            chunk = pairs[b:b + batch_size]
            input_ids, attention_mask, labels = _batch(tokenizer, chunk)
            gen = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=1, do_sample=False)
            texts = tokenizer.batch_decode(gen, skip_special_tokens=True)
            out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, output_attentions=True)
            cross = torch.stack([a.mean(dim=1) for a in out.cross_attentions])  # layers, B, T, S
            cross = cross.masked_fill(attention_mask[None, :, None, :] == 0, -1.0)
            argmax = cross.argmax(dim=-1)  # layers, B, T
            for j, p in enumerate(chunk):
                ok = texts[j] == p.target
                em[p.lang][0] += ok
                em[p.lang][1] += 1
                if len(examples) < 12 and (b + j) % 3 == 0 or not ok and len(examples) < 24:
                    examples.append({"input": p.prompt, "reference": p.target, "output": texts[j], "correct": ok})
                for t, (src_word, kind) in enumerate(p.alignment):
                    if kind not in CONTENT_KINDS:
                        continue
                    k = CONTENT_KINDS.index(kind)
                    totals[p.lang][k] += 1
                    src_tok = prefix_len[p.lang] + src_word
                    n_src = int(attention_mask[j].sum())
                    for layer in range(n_layers):
                        got = argmax[layer, j, t].item()
                        hits[p.lang][k][layer] += int(got == src_tok)
                        if got != src_tok:
                            where = ("prefix" if got < prefix_len[p.lang] else "</s>" if got == n_src - 1
                                     else "previous word" if got == src_tok - 1
                                     else "next word" if got == src_tok + 1 else "other word")
                            misses[layer][where] = misses[layer].get(where, 0) + 1

    def rate(h, n):
        return round(h / n, 4) if n else None

    per_lang_layer = {
        lang: [rate(sum(hits[lang][k][layer] for k in range(3)), sum(totals[lang])) for layer in range(n_layers)]
        for lang in LANGS
    }
    all_hits = [sum(hits[lang][k][layer] for lang in LANGS for k in range(3)) for layer in range(n_layers)]
    all_total = sum(sum(totals[lang]) for lang in LANGS)
    per_layer = [rate(h, all_total) for h in all_hits]
    best = max(range(n_layers), key=lambda i: per_layer[i] or 0)
    per_kind_best = {
        kind: rate(sum(hits[lang][k][best] for lang in LANGS), sum(totals[lang][k] for lang in LANGS))
        for k, kind in enumerate(CONTENT_KINDS)
    }
    return {
        "exact_match": {
            **{lang: rate(*em[lang]) for lang in LANGS},
            "overall": rate(sum(v[0] for v in em.values()), sum(v[1] for v in em.values())),
        },
        "n_pairs": {lang: em[lang][1] for lang in LANGS},
        "alignment": {
            "definition": "share of target nouns/adjectives/verbs whose head-averaged, teacher-forced "
                          "cross-attention argmax (decoder position predicting the word) is the aligned "
                          "English source token",
            "per_layer": per_layer,
            "per_language_per_layer": per_lang_layer,
            "best_layer": best,
            "best_rate": per_layer[best],
            "best_layer_per_kind": per_kind_best,
            "best_layer_misses": dict(sorted(misses[best].items(), key=lambda kv: -kv[1])),
            "n_content_tokens": all_total,
        },
        "examples": examples,
    }


def translate(model, tokenizer, prompts: list[str]) -> list[str]:
    import torch

    enc = tokenizer(prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        gen = model.generate(**enc, num_beams=1, do_sample=False)
    return tokenizer.batch_decode(gen, skip_special_tokens=True)


SHOWCASE = [
    "translate English to Spanish: the red house is small",
    "translate English to French: the red house is small",
    "translate English to German: the red house is small",
    "translate English to German: the black dog sees the green car",
    "translate English to French: I want three white cups",
    "translate English to Spanish: The Happy Queen Paints A Blue Door",
]


def write_model_card(out: str, cfg: TrainConfig, info: dict, scores: dict, showcase: list) -> None:
    em = scores["exact_match"]
    al = scores["alignment"]

    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    layers = ", ".join(f"layer {i}: {pct(r)}" for i, r in enumerate(al["per_layer"]))
    kinds = al["best_layer_per_kind"]
    shared = info["train_cpu_seconds"] < 0.8 * info["train_seconds"]
    base = TrainConfig(out=cfg.out, tiny=cfg.tiny, **(TINY_OVERRIDES if cfg.tiny else {}))
    cmd = "python scripts/train_demo.py --out " + ("src/t5peek/demo" if not cfg.tiny else "OUT --tiny")
    for name, value in asdict(cfg).items():
        if name not in ("out", "tiny", "log_every") and value != getattr(base, name):
            cmd += f" --{name.replace('_', '-')} {value}"

    def minutes(sec: float) -> str:
        return f"{sec / 60:.1f} min" if sec >= 60 else f"{sec:.0f} s"

    lines = [
        "# t5peek demo model",
        "",
        "A tiny `T5ForConditionalGeneration` that translates template-generated English sentences into "
        "Spanish, French and German. It ships with t5peek so the CLI has something real to inspect: "
        "with a word-level tokenizer, its cross-attention visibly lines up target words with source words "
        "(adjectives move behind the noun in Spanish and French, stay in front in German). "
        "It knows nothing outside its synthetic vocabulary.",
        "",
        "## Training data",
        "",
        f"Synthetic and generated on the fly by `scripts/train_demo.py`: {len(OBJECT_NOUNS)} object nouns, "
        f"{len(SUBJECT_NOUNS)} person/animal nouns, {len(ADJECTIVES)} adjectives, {len(VERBS)} verbs, "
        f"numbers two to ten; templates such as `the ADJ NOUN is (very) ADJ`, `the ADJ NOUNs are ADJ`, "
        "`I VERB the/a ADJ NOUN`, `the ADJ NOUN VERBs NUMBER ADJ NOUNs`. Targets are deterministic: fixed "
        "noun genders, adjective agreement (es/fr), German case and weak/mixed/strong adjective endings. "
        "Prompts use T5 prefixes: `translate English to Spanish: `, `... French: `, `... German: `.",
        "",
        "Held out: every English sentence whose SHA-1 is 0 mod 50 is never trained on, in any language; "
        f"the test set is {scores['n_pairs']['es']} such sentences, each in all three languages.",
        "",
        "## Model",
        "",
        f"T5 (relative position buckets, tied embeddings), d_model {cfg.d_model}, d_ff {cfg.d_ff} "
        f"({cfg.feed_forward_proj}), {cfg.num_layers} encoder + {cfg.num_layers} decoder layers, "
        f"{cfg.num_heads} heads; {info['params']:,} parameters; `model.safetensors` {info['size_mb']:.2f} MB "
        f"(float32). Tokenizer: word level, {info['vocab_size']} tokens (`<pad>`=0, `</s>`=1, `<unk>`=2), "
        "input lowercased (German nouns are case-preserving added tokens), `</s>` appended.",
        "",
        "## Training",
        "",
        f"`{cmd}` — {cfg.steps} steps of {cfg.batch_size} pairs, AdamW lr {cfg.lr} (warm-up {cfg.warmup}, "
        f"cosine), no dropout, seed {cfg.seed}, {cfg.threads} torch thread(s); deterministic. Took "
        f"{minutes(info['train_seconds'])} wall clock ({minutes(info['train_cpu_seconds'])} CPU"
        f"{'; the machine was shared with other jobs' if shared else ''}) on {info['hardware']}, "
        f"torch {info['torch']}, transformers {info['transformers']}. "
        f"Final training loss {info['final_loss']:.4f}.",
        "",
        "## Scores (held-out test set, from `eval.json`)",
        "",
        "| | Spanish | French | German | overall |",
        "|---|---|---|---|---|",
        f"| exact match (greedy) | {pct(em['es'])} | {pct(em['fr'])} | {pct(em['de'])} | {pct(em['overall'])} |",
        "",
        "Cross-attention alignment: for each target noun, adjective and verb "
        f"({al['n_content_tokens']} tokens), teacher forced, at the decoder position that predicts it, "
        "the head-averaged cross-attention argmax is the aligned English word in: "
        f"{layers} (decoder layers, 0-based). Best layer {al['best_layer']}: nouns "
        f"{pct(kinds['noun'])}, adjectives {pct(kinds['adj'])}, verbs {pct(kinds['verb'])}; its misses land on: "
        + (", ".join(f"{where} {n}" for where, n in al["best_layer_misses"].items()) or "none") + ".",
        "",
        "## Examples",
        "",
    ]
    for prompt, output in showcase:
        lines.append(f"- `{prompt}` → `{output}`")
    lines.append("")
    with open(os.path.join(out, "MODEL_CARD.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} CPU ({os.cpu_count()} cores)"


def run(cfg: TrainConfig, log=print) -> dict:
    """Build tokenizer and model, train, save to ``cfg.out``, evaluate the saved copy."""
    import torch
    import transformers
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(cfg.out, exist_ok=True)

    tokenizer = build_tokenizer()
    check_tokenizer(tokenizer)
    model = build_model(cfg, vocab_size=len(tokenizer))
    params = sum(p.numel() for p in model.parameters())
    log(f"vocab {len(tokenizer)} tokens, model {params:,} parameters")

    t0, c0 = time.time(), time.process_time()
    losses = train(cfg, model, tokenizer, log=log)
    train_seconds, cpu_seconds = time.time() - t0, time.process_time() - c0
    log(f"trained {cfg.steps} steps in {train_seconds:.1f}s ({cpu_seconds:.1f}s CPU)")

    model.save_pretrained(cfg.out, safe_serialization=True)
    tokenizer.save_pretrained(cfg.out)
    _fix_tokenizer_config(cfg.out)
    saved = json.load(open(os.path.join(cfg.out, "config.json"), encoding="utf-8"))
    assert set(saved.get("task_specific_params", {})) == set(TASK_KEYS.values()), "task_specific_params dropped"

    # Evaluate what was written, not the in-memory model.
    model = T5ForConditionalGeneration.from_pretrained(cfg.out, attn_implementation="eager")
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(cfg.out)
    check_tokenizer(tokenizer)
    test = test_pairs(cfg.seed, cfg.test_sentences)
    train_sources_seen = _check_disjoint(cfg, test)
    scores = evaluate(model, tokenizer, test)
    showcase = list(zip(SHOWCASE, translate(model, tokenizer, SHOWCASE)))
    size_mb = os.path.getsize(os.path.join(cfg.out, "model.safetensors")) / 1e6
    info = {
        "params": params,
        "size_mb": size_mb,
        "vocab_size": len(tokenizer),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "hardware": _hardware(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    report = {
        "config": asdict(cfg) | {"out": None},
        "info": info,
        "held_out": {
            "rule": "sha1(english sentence) % 50 == 0 is never trained on",
            "test_sentences": cfg.test_sentences,
            "checked_against_training_sentences": train_sources_seen,
        },
        **scores,
        "showcase": [
            {"input": p, "output": o, "held_out": is_held_out(p.split(": ", 1)[1].lower())} for p, o in showcase
        ],
        "loss": {"first": losses[0], "last20_mean": info["final_loss"]},
    }
    with open(os.path.join(cfg.out, "eval.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, ensure_ascii=False, indent=2)
        f.write("\n")
    write_model_card(cfg.out, cfg, info, scores, showcase)
    log(json.dumps({"exact_match": scores["exact_match"], "alignment": scores["alignment"]["per_layer"]}))
    for p, o in showcase:
        log(f"{p} -> {o}")
    return {"losses": losses, "scores": scores, "info": info}


def _check_disjoint(cfg: TrainConfig, test: list[Pair]) -> int:
    """Replay the training stream and assert no test sentence occurs in it."""
    test_sources = {p.source for p in test}
    stream = training_pairs(random.Random(cfg.seed))
    n = cfg.steps * cfg.batch_size
    for _ in range(n):
        assert next(stream).source not in test_sources
    return n


def _fix_tokenizer_config(out: str) -> None:
    """Name the generic fast tokenizer class so older transformers can load it too."""
    path = os.path.join(out, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        conf = json.load(f)
    conf["tokenizer_class"] = "PreTrainedTokenizerFast"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(conf, f, ensure_ascii=False, indent=2)
        f.write("\n")


def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (e.g. src/t5peek/demo)")
    p.add_argument("--tiny", action="store_true", help="tiny model and a few steps (for tests)")
    defaults = TrainConfig(out="")
    helps = {
        "seed": "seed for data, init and held-out split",
        "steps": "optimizer steps",
        "batch_size": "pairs per step",
        "lr": "peak AdamW learning rate",
        "warmup": "linear warm-up steps (then cosine decay)",
        "num_layers": "encoder layers (= decoder layers)",
        "test_sentences": "held-out English sentences to evaluate (each in all 3 languages)",
        "threads": "torch CPU threads",
    }
    for name in ("seed", "steps", "batch_size", "lr", "warmup", "d_model", "d_ff", "num_layers",
                 "num_heads", "test_sentences", "threads", "log_every"):
        default = getattr(defaults, name)
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=None,
                       help=f"{helps.get(name, name.replace('_', ' '))} (default {default})")
    p.add_argument("--feed-forward-proj", default=None, choices=["relu", "gated-gelu"])
    a = p.parse_args(argv)
    values = dict(TINY_OVERRIDES) if a.tiny else {}
    for k, v in vars(a).items():
        if v is not None and k not in ("tiny",):
            values[k] = v
    return TrainConfig(tiny=a.tiny, **values)


def main(argv=None) -> int:
    cfg = parse_args(argv)
    run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
