"""What an inbound reply means: a pure, offline, rule-based classifier (no I/O, no clock unless given one).

``classify(body, subject, sender, now)`` returns one of ``LABELS`` with a confidence, the evidence (the phrases
that decided it), for out-of-office the return date, for a referral the referred address or name, and for an
auto-reply whether it is a bounce (a delivery-failure notification).

How the text is read:
- normalised first: HTML reduced to text (quoted ``<blockquote>`` blocks dropped), NFKC, typographic quotes
  folded, lower case, accents folded (``désabonner`` and ``desabonner`` match alike);
- only the sender's own words count for intent: lines starting with ``>`` are dropped and everything from the
  first reply header on ("On ... wrote:", "Am ... schrieb ...:", "Le ... a écrit :", "El ... escribió:",
  "Op ... schreef ...:", "Em ... escreveu:", "Il giorno ... ha scritto:", "-----Original Message-----", an
  Outlook "From:/Sent:" block, ...) is cut, so our own email quoted in the reply (its unsubscribe link, its
  questions) never drives the class;
- English, German, French, Spanish, Dutch, Portuguese and Italian phrases.

Precedence is the safe one: a delivery failure reported by a mail system (mailer-daemon/postmaster sender or a
DSN subject: no person wrote it) first; then an unsubscribe request anywhere in the sender's words, which wins
over everything a person may also have said ("not interested, please remove me" is unsubscribe); then a bounce
found in the text; out of office; the person has left (wrong person); other auto-replies; then the human
classes: wrong person, not now, not interested, interested. A reply nothing recognises is ``interested`` with a
low confidence: a person answered, and a person should look at it (stopping the sequence is the safe default).

``second_opinion(llm, body, subject)`` asks the app's LLM chain for one label (None without a configured network
provider, or on any error); ``merge(rules, llm)`` lets it only make the outcome safer.
"""
from __future__ import annotations

import html as _html
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.utils import parseaddr

LABELS = ("interested", "not_now", "not_interested", "unsubscribe", "out_of_office", "wrong_person", "auto_reply")
# a person wrote these: the sequence stops
HUMAN = ("interested", "not_now", "not_interested", "unsubscribe", "wrong_person")
DEFAULT_PAUSE = timedelta(days=7)
MAX_CHARS = 20_000        # a reply is read up to here (the quoted thread is at the end anyway)
MAX_PAUSE_DAYS = 400      # a "return date" further out is not believed (the default pause applies)


@dataclass(frozen=True)
class Classification:
    label: str
    confidence: float
    evidence: tuple[str, ...] = ()
    bounce: bool = False                 # auto_reply only: a delivery-failure notification
    return_date: date | None = None      # out_of_office only: the stated return date, else today + 7 days
    return_date_given: bool = False      # False: return_date is the default pause
    referral: str | None = None          # wrong_person only: the address (or name) we were referred to
    text: str = ""                       # the sender's own words (quoted thread removed), for an excerpt

    @property
    def human(self) -> bool:
        """A person wrote it (the sequence stops)."""
        return self.label in HUMAN

    @property
    def hot(self) -> bool:
        """Worth a person's attention now: interest, or a referral to someone else."""
        return self.label == "interested" or (self.label == "wrong_person" and bool(self.referral))

    def to_dict(self) -> dict:
        return {"label": self.label, "confidence": self.confidence, "evidence": list(self.evidence),
                "bounce": self.bounce, "return_date": self.return_date.isoformat() if self.return_date else None,
                "return_date_given": self.return_date_given, "referral": self.referral}


# --------------------------------------------------------------------------------------------- normalising

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'", "\u201c": '"', "\u201d": '"',
                         "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-", "\u00a0": " "})
_LOOKS_HTML = re.compile(r"(?i)<\s*/?\s*(?:html|body|div|p|br|span|table|td|tr|blockquote|font|a|b|i|u|strong|em|"
                         r"ul|ol|li|h[1-6]|meta|style|head|img|hr|center)\b[^<>]{0,2000}>")
_HTML_DROP = re.compile(r"(?is)<(script|style|head|title)\b[^>]{0,2000}>.{0,200000}?</\1\s*>")
_BLOCKQUOTE = re.compile(r"(?is)<blockquote\b[^>]{0,2000}>(?:(?!<blockquote\b).){0,200000}?</blockquote\s*>")
_HTML_BREAK = re.compile(r"(?i)<br\s*/?>|</(?:p|div|li|tr|h[1-6]|table|blockquote)\s*>|<(?:p|div|hr)\b[^<>]{0,2000}>")
_HTML_TAG = re.compile(r"(?s)<!--.{0,20000}?-->|<\s*/?\s*[a-zA-Z][\w:-]*(?:\s[^<>]{0,2000})?/?\s*>")
_SPACES = re.compile(r"[ \t\f\v\r]+")


def _html_to_text(s: str) -> str:
    if "<" not in s or not _LOOKS_HTML.search(s):
        return _html.unescape(s) if "&" in s else s
    s = _HTML_DROP.sub(" ", s)
    for _ in range(8):  # innermost quoted blocks first (they nest)
        s, n = _BLOCKQUOTE.subn("\n", s)
        if not n:
            break
    s = _HTML_BREAK.sub("\n", s)
    s = _HTML_TAG.sub(" ", s)
    return _html.unescape(s)


def _fold(s: str) -> str:
    """Lower case without accents (ß kept), for matching."""
    s = unicodedata.normalize("NFKD", s.lower())
    return "".join(c for c in s if not unicodedata.combining(c))


def _clean(s: str | None) -> str:
    if not s:
        return ""
    s = s[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    s = _html_to_text(s)
    s = unicodedata.normalize("NFKC", s).translate(_QUOTES)
    return s


# Where the quoted thread starts (matched on folded lines).
_WROTE = re.compile(
    r"^\s*(?:on\b.{0,300}\bwrote|am\b.{0,300}\bschrieb\b.{0,300}|le\b.{0,300}\ba ecrit|el\b.{0,300}\bescribio|"
    r"op\b.{0,300}\bschreef\b.{0,300}|em\b.{0,300}\bescreveu|il giorno\b.{0,300}\bha scritto)\s*:?\s*$|"
    r"^.{0,300}\b(?:wrote|schrieb|a ecrit|escribio|schreef|escreveu|ha scritto)\b[^:]{0,120}:\s*$")
_SEPARATOR = re.compile(
    r"^\s*(?:-{2,}|_{2,}|={2,}|\*{2,})?\s*(?:original message|ursprungliche nachricht|originalnachricht|"
    r"message d'origine|message original|mensaje original|oorspronkelijk bericht|origineel bericht|"
    r"mensagem original|messaggio originale|forwarded message|weitergeleitete nachricht|message transfere|"
    r"mensaje reenviado|doorgestuurd bericht|mensagem encaminhada|messaggio inoltrato)\s*(?:-{2,}|_{2,}|={2,})?\s*$")
_RULE = re.compile(r"^\s*(?:_{8,}|-{8,})\s*$")
_HDR_FROM = re.compile(r"^\s*\*?(?:from|von|de|da|van|expediteur|remetente|mittente|afzender)\s*\*?\s*:")
_HDR_NEXT = re.compile(r"^\s*\*?(?:sent|date|to|subject|cc|gesendet|datum|an|betreff|envoye|objet|a|enviado|"
                       r"fecha|para|asunto|verzonden|aan|onderwerp|enviada em|data|assunto|inviato|oggetto|"
                       r"envoye le|date de l'envoi)\s*\*?\s*:")


def _own_lines(lines: list[str], folded: list[str]) -> tuple[list[str], list[str]]:
    """The sender's own lines: quoted lines dropped, cut where the quoted thread starts."""
    out, fout = [], []
    n = len(folded)
    for i, f in enumerate(folded):
        st = f.lstrip()
        if st.startswith(">") or st.startswith("|>"):
            continue
        if _SEPARATOR.match(f) or _RULE.match(f):
            break
        if _WROTE.match(f):
            break
        # "On Tue, 24 Nov 2026 at 10:00, Sales <" / "sales@x> wrote:" split over two lines
        if i + 1 < n and re.match(r"^\s*(?:on|am|le|el|op|em|il giorno)\b", f) and len(f) < 300 and \
                _WROTE.match(f + " " + folded[i + 1]):
            break
        if _HDR_FROM.match(f) and any(_HDR_NEXT.match(x) for x in folded[i + 1:i + 5]):
            break
        out.append(lines[i])
        fout.append(f)
    return out, fout


@dataclass
class _Text:
    own: str                 # the sender's own words, folded, one line per line
    flat: str                # the same on one line (white space collapsed)
    own_orig: str            # the sender's own words as written (case kept): names and addresses
    full: str                # everything, folded (bounces are judged on the whole notification)
    subject: str             # folded, without Re:/AW:/Fwd: prefixes
    subject_raw: str         # folded, as sent (an auto-reply puts its marker first: "Automatic reply: ...")
    sender: str              # the sender's address, lower case
    sender_name: str         # folded display name
    lines: list[str] = field(default_factory=list)  # own folded non-empty lines


_PREFIX = re.compile(r"^\s*(?:(?:re|aw|fw|fwd|wg|tr|rv|res|sv|antw|r|enc|rif)\s*(?:\[\d+\])?\s*:\s*)+")


def _prepare(body: str | None, subject: str | None, sender: str | None) -> _Text:
    text = _clean(body)
    lines = [_SPACES.sub(" ", x).strip() for x in text.split("\n")]
    folded = [_fold(x) for x in lines]
    own, fown = _own_lines(lines, folded)
    fown_ne = [x for x in fown if x]
    own_text = "\n".join(fown_ne)
    name, addr = parseaddr(_clean(sender or ""))
    subj = _fold(_SPACES.sub(" ", _clean(subject or "").replace("\n", " ")).strip())
    return _Text(own=own_text, flat=" ".join(fown_ne), own_orig="\n".join(x for x in own if x),
                 full=" ".join(x for x in folded if x), subject=_PREFIX.sub("", subj), subject_raw=subj,
                 sender=(addr or sender or "").strip().lower()[:320], sender_name=_fold(name), lines=fown_ne)


def _rx(*parts: str) -> re.Pattern:
    return re.compile(r"(?:" + "|".join(parts) + r")")


# --------------------------------------------------------------------------------------------- phrases
# Every pattern is matched on folded text: lower case, no accents, typographic quotes folded to ' and ".

_YOU_LIST = r"(?:your|the|this|ur|that|any|all)?\s*(?:mailing |email |e-mail |contact |distribution |marketing )?"

UNSUBSCRIBE = _rx(
    # English
    r"\bun-?subscri(?:be|bed|bing|ption)\b", r"\bunsub\b", r"\bopt(?:ing|ed)?[- ]?(?:me |us )?out\b",
    r"\bremov(?:e|ing) (?:me|us|myself|all of us|our team|everyone|my (?:e-?mail|address|name|details|contact|info|"
    r"information|data)|this (?:e-?mail )?address)\b",
    r"\b(?:take|get|drop|strike|scrub|delete|cross) (?:me|us|my (?:name|e-?mail|address)) (?:off|out of|from)\b",
    r"\boff (?:of )?" + _YOU_LIST + r"(?:list|lists|database|distribution|sequence|cadence|campaign)\b",
    r"\b(?:delete|erase|remove|purge) (?:all )?(?:of )?(?:my|our) (?:personal )?"
    r"(?:data|information|info|details|records?)\b",
    r"\bstop(?:ped|s)? (?:e-?mailing|mailing|contacting|messaging|spamming|sending|writing|bothering|pinging|"
    r"reaching out)\b",
    r"\b(?:do not|don't|dont|never) (?:ever )?(?:e-?mail|contact|message|write to|reach out to|bother|spam|ping|call) "
    r"(?:me|us|this address|this e-?mail)\b",
    r"\b(?:do not|don't|dont|never) (?:ever )?send (?:me|us) "
    r"(?:any ?more|more|further|anything|another|these|e-?mails)\b",
    r"\bno (?:more|further) (?:e-?mails|emails|messages|mails|contact|outreach|follow[- ]?ups)\b",
    r"\b(?:don't|do not|dont) want (?:to receive |any )?(?:more |further |these |your )?"
    r"(?:e-?mails|emails|messages|mails)\b",
    r"\b(?:not|don't|do not|dont|no longer) (?:wish|want|like) to "
    r"(?:be contacted|receive|hear from|be emailed|be on)\b",
    r"\bcease (?:and desist|all contact|contact)\b", r"\b(?:be|been|get|getting|being) removed\b",
    r"\bremove (?:from|off) (?:your|the|this|all|any)\b", r"\bplease stop\b",
    r"\bremove (?:from|off) (?:mailing |email |e-mail |contact |distribution )?(?:list|lists|database|distribution)\b",
    r"\bstop (?:these|the|your|all|this|sending) (?:e-?mails|emails|messages|mails|spam|outreach|follow[- ]?ups)\b",
    r"\bleave me alone\b", r"\bthis is spam\b", r"\breported (?:as|this as) spam\b",
    r"\bmark(?:ed|ing)? (?:this |you )?as spam\b", r"\bnot to be contacted\b",
    # German
    r"\babmelden\b", r"\babgemeldet\b", r"\babmeldung\b", r"\babbestell", r"\baustragen\b", r"\bausgetragen\b",
    r"\baus (?:dem|ihrem|eurem|ihren|euren|diesem|allen|jeglichen)? ?(?:e-?mail-?)?(?:verteiler|newsletter|"
    r"adressbuch|liste|system|datenbank|mailing)",
    r"\b(?:entfernen|loschen|streichen) sie (?:bitte )?(?:mich|meine|uns)\b",
    r"\b(?:meine|unsere) (?:daten|adresse|e-?mail-?adresse|kontaktdaten|e-?mail) (?:bitte |umgehend |sofort )?"
    r"(?:zu )?(?:loschen|entfernen|streichen)\b",
    r"\bkeine (?:weiteren |werbe-?)?(?:e-?mails|mails|nachrichten|zusendungen|werbung|kontaktaufnahme)\b",
    r"\bnicht (?:mehr |weiter )?(?:kontaktieren|anschreiben|anmailen|belastigen|zu kontaktieren|anzuschreiben)\b",
    r"\b(?:widerspreche|widerspruch)\b", r"\bunterlassen sie\b",
    r"\bloschung (?:meiner|unserer|der|ihrer) (?:daten|adresse|e-?mail|kontaktdaten)",
    r"\bnicht (?:mehr|weiter) (?:angeschrieben|kontaktiert|angerufen|belastigt|angemailt)\b",
    # French
    r"\bdesabonn", r"\bdesinscri", r"\bdesincri", r"\bse desabonner\b",
    r"\b(?:retirez|supprimez|enlevez|effacez|otez|rayez|retirer|supprimer)[- ](?:moi|nous|mon adresse|mon e-?mail|"
    r"mes coordonnees|mes donnees|mon nom|mon contact)\b",
    r"\bne (?:plus|pas|jamais) (?:me |nous |m')?(?:contacter|ecrire|envoyer|solliciter|relancer|recevoir)\b",
    r"\bne (?:souhaite|veux|desire|voulons|souhaitons) (?:plus|pas) (?:etre (?:contacte|sollicite)|recevoir)",
    r"\bne (?:me|nous) (?:contactez|ecrivez|relancez|sollicitez|envoyez|recontactez) (?:plus|pas|jamais)\b",
    r"\bne souhaite (?:plus|pas) (?:etre contacte|recevoir)\b",
    r"\b(?:plus|aucun|aucune) (?:d'|de )?(?:e-?mails?|mails?|messages?|courriels?|sollicitations?|relances?)\b",
    r"\barretez (?:de m'|de nous |de me |vos |les |ces )",
    # Spanish
    r"\b(?:darme|dame|denme|deme|darnos|dadme|dar|dese|darse|den|doy|solicito (?:la )?|pido (?:la )?) de baja\b",
    r"\bsolicito (?:la )?baja\b", r"\bbaja (?:por favor|inmediata|de (?:la|esta|su) lista)\b",
    r"\b(?:eliminen|elimine|eliminad|borren|borre|quiten|quite|saquen|saque|retiren) (?:mi |mis |me |nos )?(?:de )?"
    r"(?:correo|email|e-mail|direccion|datos|contacto|la lista|su lista|lista|base de datos)",
    r"\b(?:eliminarme|borrarme|quitarme|sacarme|retirarme) de\b",
    r"\b(?:borr|elimin|quit|sac|retir)(?:en|e|ad|a)(?:me|nos)\b",
    r"\bno (?:me|nos) (?:envie|envien|envies|escriba|escriban|escribas|contacte|contacten|contactes|mande|manden|"
    r"mandes|vuelva|vuelvan|vuelvas) (?:mas|a|ningun|nada)\b",
    r"\bno (?:quiero|deseo|queremos|deseamos) (?:recibir|que me (?:escriban|contacten|envien))\b",
    r"\bdejen? de (?:escribirme|enviarme|contactarme|mandarme|escribirnos|enviarnos|contactarnos)\b",
    r"\b(?:desuscrib|desinscrib|cancelar (?:la |mi )?suscripcion)",
    # Dutch
    r"\bafmelden\b", r"\bafgemeld\b", r"\buitschrijven\b", r"\buit te schrijven\b", r"\bschrijf (?:me|mij|ons) uit\b",
    r"\bmeld (?:me|mij|ons) af\b",
    r"\bverwijder (?:mij|me|ons|mijn (?:gegevens|e-?mailadres|adres|naam|e-?mail))\b",
    r"\b(?:haal|zet|neem) (?:mij|me|ons) (?:van|uit|af) (?:de|uw|jullie|je|deze)? ?(?:lijst|mailinglijst|bestand|"
    r"database|verzendlijst)",
    r"\bgeen (?:e-?mails?|mails|berichten|mailtjes) meer\b",
    r"\bniet (?:meer|langer) (?:mailen|e-?mailen|benaderen|contacteren|lastigvallen|te mailen|te benaderen)\b",
    r"\bstop (?:met|nu met) (?:mailen|e-?mailen|sturen|berichten)\b",
    r"\b(?:wil|wens) (?:geen|niet langer|niet meer) (?:e-?mails?|mails|berichten)?\s?(?:meer )?ontvangen\b",
    # Portuguese
    r"\bdescadastr", r"\bcancelar (?:a |minha )?(?:inscricao|assinatura)\b",
    r"\b(?:remova|removam|retire|retirem|exclua|excluam|tire|tirem|apague|apaguem)[- ]?(?:me|nos)? "
    r"(?:da|de|das|meu|minha|meus) ?(?:sua |vossa |lista|base|e-?mail|endereco|contato|cadastro|dados|nome)",
    r"\bme (?:tire|tirem|remova|removam|retire|retirem) d[ae]",
    r"\bnao (?:me|nos) (?:envie|enviem|mande|mandem|contate|contatem|contacte|contactem|escreva|escrevam|procure|"
    r"procurem) (?:mais|novamente|de novo)\b",
    r"\bnao (?:quero|desejo|queremos|desejamos) (?:mais )?(?:receber|ser contactad|ser contatad)",
    r"\bparem de (?:me |nos )?(?:enviar|mandar|contatar|contactar|escrever)\b",
    # Italian
    r"\bcancellami\b", r"\bcancellatemi\b", r"\bdisiscriv", r"\bdisiscrizione\b",
    r"\b(?:rimuovetemi|toglietemi|eliminatemi|rimuovermi|togliermi|eliminarmi|cancellarmi)\b",
    r"\b(?:togliete|rimuovete|eliminate|cancellate|rimuovere|cancellare|eliminare) (?:il mio|la mia|i miei|"
    r"il nostro) (?:indirizzo|contatto|nominativo|email|e-mail|dati)\b",
    r"\bnon (?:voglio|desidero|vogliamo|desideriamo) (?:piu )?(?:ricevere|essere contattat)",
    r"\bnon (?:mi|ci) (?:contattate|scrivete|inviate|mandate|contatti|scriva|invii|mandi) piu\b",
    r"\bsmettete? di (?:scrivermi|contattarmi|inviarmi|mandarmi|scriverci|contattarci)\b",
    r"\bnon contattatemi\b",
    r"\bnon (?:scrivetemi|contattatemi|mandatemi|inviatemi|scrivermi|contattarmi|mandarmi|inviarmi)\b",
)
# A whole reply that is just a command ("STOP", "remove", "Baja."): the sender's words and nothing else.
_COMMAND = (r"(?:stop|stopp|remove|unsubscribe|unsub|baja|abmelden|austragen|uitschrijven|afmelden|desinscription|"
            r"desabonnement|cancellami|descadastrar|cancelar|remove me|no more|end|quit|cancel|arret|arreter|alto|"
            r"basta|please|pls|thanks|thank you|bitte|merci|por favor|alstublieft|obrigad[oa]|grazie)")
UNSUBSCRIBE_ALONE = re.compile(r"^\W*(?:please |pls )?" + _COMMAND + r"(?:\W+" + _COMMAND + r")*\W*$")
_POLITE_ONLY = re.compile(r"^\W*(?:(?:please|pls|thanks|thank you|bitte|merci|por favor|alstublieft|obrigad[oa]|grazie)"
                          r"\W*)*$")

BOUNCE_SENDER = re.compile(r"^(?:mailer-daemon|mailer_daemon|postmaster|mail-daemon|maildaemon|mail\.delivery\.system|"
                           r"mdaemon|bounces?|bounce-\S*|microsoftexchange\S*|mail-?delivery\S*)@")
BOUNCE_NAME = re.compile(r"\b(?:mail delivery (?:subsystem|system|service)|mailer-daemon|postmaster|"
                         r"microsoft outlook|mail delivery)\b")
BOUNCE_SUBJECT = _rx(
    r"\bdelivery status notification \((?:failure|failed)\)", r"\bundeliverable\b", r"\bundelivered mail\b",
    r"\bundeliverable mail\b", r"\bmail delivery failed\b", r"\bdelivery failure\b", r"\bdelivery has failed\b",
    r"\breturned mail\b", r"\bfailure notice\b", r"\bmessage not delivered\b", r"\bdelivery failed\b",
    r"\bnon ?-?delivery report\b", r"\baddress not found\b", r"\bunzustellbar\b", r"\bnicht zustellbar\b",
    r"\bunzustellbare\b", r"\bnon remis\b", r"\bechec de (?:la )?(?:remise|livraison|distribution)\b",
    r"\bno se puede entregar\b", r"\bno entregado\b", r"\bonbestelbaar\b", r"\bniet bezorgd\b",
    r"\bnao (?:pode ser )?entregue\b", r"\bfalha na entrega\b", r"\bmancato recapito\b",
    r"\bimpossibile recapitare\b", r"\bnon recapitabile\b")
BOUNCE_DELAY = _rx(r"\bdelivery status notification \(delay\)", r"\bdelivery (?:has been |is )?delayed\b",
                   r"\bdelay(?:ed)? (?:notification|warning)\b", r"\bwill (?:continue to )?retry\b",
                   r"\bstill trying\b", r"\bnot yet been delivered\b", r"\bverzogert\b", r"\bretarde\b",
                   r"\bretrasad[oa]\b", r"\bvertraagd\b", r"\bin ritardo\b", r"\batrasad[oa]\b",
                   r"\b4\.\d\.\d{1,3}\b")
BOUNCE_CODE = re.compile(r"\b(?:55[0-4][ -])?5\.[1-7]\.\d{1,3}\b|\b55[0-4][ -](?:user|mailbox|recipient|no such|"
                         r"requested action|sorry|invalid|address|#?5\.)")
BOUNCE_TEXT = _rx(
    r"\bdelivery (?:to the following recipients? )?(?:has )?failed\b", r"\bdelivery has failed\b",
    r"\b(?:message|e-?mail|mail) (?:could not|couldn't|wasn't|was not|cannot|can't) (?:be )?delivered\b",
    r"\bcouldn't be delivered\b", r"\bcould not be delivered\b", r"\bundeliverable\b",
    r"\b(?:address|user|recipient|mailbox|account) (?:not found|unknown|unavailable|does not exist|doesn't exist|"
    r"is disabled|disabled|is inactive|has been disabled|not available)\b",
    r"\b(?:email |e-mail )?account (?:that )?you tried to reach (?:does not exist|is disabled)\b",
    r"\brecipient address rejected\b", r"\bno such (?:user|mailbox|recipient)\b", r"\bunknown (?:user|recipient)\b",
    r"\bmail delivery (?:failed|subsystem)\b", r"\bpermanent (?:error|failure|fatal error)\b",
    r"\bhop count exceeded\b", r"\brejected (?:your message|the message)\b", r"\bnot delivered to\b",
    r"\bunzustellbar\b", r"\bkonnte nicht zugestellt werden\b", r"\bnicht zugestellt\b",
    r"\bn'a pas pu etre (?:remis|distribue|delivre)\b", r"\bnon remis\b",
    r"\bno (?:se )?(?:ha podido|pudo|puede) (?:ser )?entregar\b", r"\bno (?:pudo|ha podido) ser entregado\b",
    r"\bkon niet (?:worden )?(?:bezorgd|afgeleverd)\b", r"\bonbestelbaar\b",
    r"\bnao (?:pode|pôde|pude|foi possivel) (?:ser )?entregue\b", r"\bnao foi entregue\b", r"\bfalha na entrega\b",
    r"\bimpossibile (?:recapitare|consegnare)\b", r"\bnon (?:e stato|e) (?:possibile )?recapitat",
    r"\bmancato recapito\b")

# Subjects: matched at the start of the subject as sent ("Automatic reply: <our subject>", "[Out of office]"),
# never inside it (our own subject, quoted after "Re:", may say anything).
_SUBJ_START = r"^\W{0,3}(?:(?:re|aw|fw|fwd|wg|tr|rv|res|sv|antw|r)\s*:\s*)?\W{0,3}"
OOO_SUBJECT = re.compile(_SUBJ_START + r"(?:out of (?:the )?office|ooo\b|abwesenheit|nicht im buro|absence|absente?\b|"
                         r"fuera de la oficina|ausente|afwezig|fora do escritorio|fuori ufficio|on leave|"
                         r"vacation reply|holiday reply|away from (?:the )?office|conges|en vacances|de vacaciones|"
                         r"op vakantie|de ferias|"
                         r"in ferie|urlaub)")
AUTO_SUBJECT = re.compile(_SUBJ_START + r"(?:automatic reply|auto(?:matic)?[- ]?(?:reply|response|antwort)|autoreply|"
                          r"automatische antwort|reponse automatique|respuesta automatica|automatisch antwoord|"
                          r"resposta automatica|risposta automatica|\[?#?[a-z]*-?\d{3,}\]|ticket|"
                          r"(?:we(?:'ve| have)? )?received\b|thank you for (?:contacting|your (?:message|email|inquiry|"
                          r"enquiry|request))|eingangsbestatigung|accuse de reception|acuse de recibo)")
# Strong signs of an absence notice (an auto-reply or a person saying so).
OOO_STRONG = _rx(
    # English
    r"\bout of (?:the )?office\b", r"\bi am ooo\b", r"\bi'm ooo\b", r"\bim ooo\b", r"\bout of office\b",
    r"\bon (?:annual |parental |maternity |paternity |sick |medical |family |study |extended |bereavement |"
    r"holiday |vacation |garden |compassionate )?leave\b", r"\bannual leave\b",
    r"\b(?:i am|i'm|im|i will be|i'll be|currently|presently) (?:currently |now )?"
    r"(?:away|out|off|on holiday|on holidays|"
    r"on vacation|on pto|on a business trip|on sabbatical|abroad|offline)\b(?! (?:of|to|with|for|on|in)\b)",
    r"\b(?:on|taking) (?:a )?(?:vacation|holiday|holidays|pto|sabbatical|break|time off)\b",
    r"\baway from (?:the office|my desk|my (?:e-?mail|inbox|computer)|work)\b",
    r"\blimited (?:access to (?:my )?(?:e-?mail|emails|messages|the internet)|connectivity|e-?mail access)\b",
    r"\b(?:no|without) (?:access to (?:my )?(?:e-?mail|emails)|e-?mail access)\b",
    r"\b(?:upon|on|after) my return\b", r"\buntil my return\b", r"\bwhen i (?:am|get|'m) back\b",
    r"\bwhen i return\b", r"\b(?:i will|i'll) (?:respond|reply|get back to you|answer|be back|return)\b.{0,60}"
    r"\b(?:return|back)\b", r"\bout until\b", r"\boff until\b",
    r"\breturning (?:on|to the office|to work|to my desk)\b", r"\bthe office (?:is|will be) closed\b",
    r"\bbank holiday\b", r"\bpublic holiday\b", r"\bfor (?:urgent|immediate) (?:matters|requests|inquiries|issues|"
    r"enquiries|questions)\b", r"\bif (?:this|it|your (?:matter|request)) is urgent\b", r"\bin case of urgency\b",
    # German
    r"\babwesen", r"\bnicht im (?:buro|haus|office)\b", r"\bausser haus\b", r"\baußer haus\b", r"\bim urlaub\b",
    r"\burlaubsbedingt\b", r"\bin (?:den|die) (?:ferien|urlaub)\b", r"\bauf (?:dienst|geschafts)?reise\b",
    r"\belternzeit\b", r"\bmutterschutz\b", r"\bkrankheitsbedingt\b", r"\bbetriebsferien\b",
    r"\bnicht erreichbar\b", r"\b(?:keinen|eingeschrankten|nur eingeschrankt) (?:zugriff|zugang)\b",
    r"\bnach meiner ruckkehr\b", r"\bwieder (?:im buro|erreichbar|im haus|fur sie da|zuruck|da)\b",
    r"\bin dringenden fallen\b", r"\bbin (?:ich )?(?:ab|am|bis)\b.{0,40}\b(?:zuruck|wieder)\b",
    # French
    r"\bje suis absente?\b", r"\bactuellement absente?\b", r"\bsuis absente?\b", r"\babsente? du bureau\b",
    r"\ben conges?\b", r"\ben vacances\b", r"\ben deplacement\b", r"\bhors du bureau\b", r"\bconge (?:maternite|"
    r"parental|paternite|maladie)\b", r"\bje serai de retour\b", r"\ba mon retour\b", r"\bdes mon retour\b",
    r"\bacces (?:limite|restreint) a (?:mes )?(?:e-?mails|messagerie|courriels)\b", r"\ben cas d'urgence\b",
    # Spanish
    r"\bfuera de la oficina\b", r"\bde vacaciones\b", r"\b(?:estoy|estare|me encuentro) (?:ausente|fuera|de viaje)\b",
    r"\bestare de (?:vuelta|regreso)\b", r"\ba mi (?:regreso|vuelta)\b", r"\bde baja (?:por|medica)\b",
    r"\bacceso limitado\b", r"\ben caso de urgencia\b", r"\bpara (?:asuntos|temas) urgentes\b",
    # Dutch
    r"\bafwezig\b", r"\bniet op kantoor\b", r"\b(?:met|op) vakantie\b", r"\bbuiten kantoor\b",
    r"\b(?:met|op) verlof\b", r"\bzwangerschapsverlof\b", r"\bouderschapsverlof\b", r"\bbeperkt bereikbaar\b",
    r"\bniet bereikbaar\b", r"\bben ik (?:weer|terug)\b", r"\bweer (?:aanwezig|op kantoor|bereikbaar|terug)\b",
    r"\bbij spoed\b", r"\bvoor dringende (?:zaken|vragen)\b",
    # Portuguese
    r"\bfora do escritorio\b", r"\bde ferias\b", r"\b(?:estou|estarei) (?:ausente|fora|em viagem|de licenca)\b",
    r"\blicenca (?:maternidade|paternidade|medica)\b", r"\bestarei de volta\b", r"\bno meu retorno\b",
    r"\bao (?:meu )?retornar\b", r"\bacesso limitado\b", r"\bem caso de urgencia\b", r"\bpara assuntos urgentes\b",
    # Italian
    r"\bfuori (?:ufficio|sede)\b", r"\bin ferie\b", r"\b(?:sono|saro) (?:assente|fuori ufficio|in trasferta)\b",
    r"\bin vacanza\b", r"\bin congedo\b", r"\bmaternita\b", r"\brientrero\b", r"\bal (?:mio )?rientro\b",
    r"\baccesso limitato\b", r"\bper (?:questioni|urgenze|richieste) urgenti\b", r"\bin caso di urgenza\b",
)
# Weaker signs (a person may say them in passing): an absence only when nothing else a person says is found.
OOO_WEAK = _rx(
    r"\b(?:i am|i'm|im|i will be|i'll be|currently) (?:currently |now )?(?:travell?ing|at a conference|on the road|"
    r"out|away)\b", r"\bback in the office\b", r"\bin the office (?:again|on|from)\b", r"\b(?:i will|i'll) be back\b",
    r"\bwhen i(?:'m| am)? back\b", r"\bbin (?:ich )?unterwegs\b", r"\bje serai de retour\b", r"\bde retour (?:le|lundi|"
    r"mardi|mercredi|jeudi|vendredi)\b", r"\bestoy de viaje\b", r"\bde viaje\b", r"\bben (?:ik )?onderweg\b",
    r"\bestou viajando\b", r"\bem viagem\b", r"\bsono in viaggio\b", r"\bin viaggio\b", r"\bunterwegs\b",
)
# The person has left: an auto-reply that is really "wrong person" (stop; maybe a referral).
LEFT = _rx(
    r"\bno longer (?:with|at|employed|working|works|work|part of|a member of|in the company|on the team)\b",
    r"\b(?:has|have) (?:left|departed) (?:the company|the organi[sz]ation|the firm|the business|us|our|\w+ (?:inc|"
    r"ltd|gmbh|llc))\b", r"\bleft the (?:company|organi[sz]ation|firm|business)\b", r"\b(?:has |have )?retired\b",
    r"\bno longer (?:here|around|at this address)\b",
    r"\bnicht mehr (?:im unternehmen|bei|fur uns|in unserem|tatig|beschaftigt|fur \w+ tatig)\b",
    r"\bhat (?:das unternehmen|uns|die firma) verlassen\b", r"\bausgeschieden\b",
    r"\bne fait plus partie\b", r"\ba quitte (?:l'entreprise|la societe|l'organisation|notre)\b",
    r"\bn'est plus (?:chez|dans|en poste|employe|salarie|parmi nous)\b",
    r"\bya no (?:trabaja|forma parte|esta) (?:en|con|de)\b", r"\bha dejado (?:la empresa|la compania|de trabajar)\b",
    r"\bniet (?:meer|langer) (?:werkzaam|in dienst|bij|verbonden aan)\b",
    r"\bheeft (?:het bedrijf|ons|de organisatie) verlaten\b",
    r"\bnao (?:trabalha|faz parte|esta) mais\b", r"\bdeixou a (?:empresa|organizacao)\b",
    r"\bnon (?:lavora|fa|e) piu (?:parte|presso|con|in|nella)\b",
    r"\bha lasciato (?:l'azienda|la societa|l'organizzazione)\b",
    r"\b(?:this|the) (?:e-?mail )?(?:address|mailbox|account) is no longer (?:active|in use|monitored|valid)\b"
    r"(?=.{0,200}@)",
)
AUTO = _rx(
    r"\b(?:this is an? )?(?:automatic(?:ally)?|automated|auto-?generated|system[- ]generated)(?: generated)? "
    r"(?:reply|response|message|notification|e-?mail|acknowledge?ment|confirmation)\b",
    r"\bauto-?(?:reply|response|responder)\b",
    r"\bdo not (?:reply|respond) (?:to )?(?:this|directly)\b", r"\bplease do not (?:reply|respond)\b",
    r"\bwe(?: have|'ve)? (?:successfully )?received your "
    r"(?:message|e-?mail|inquiry|enquiry|request|submission|ticket)\b",
    r"\bthis is to confirm (?:that )?we(?: have|'ve)? received\b",
    r"\byour (?:message|e-?mail|request|inquiry|enquiry) (?:has been|was) (?:received|logged|forwarded to|assigned)\b",
    r"\b(?:ticket|case|request|reference) (?:number|no\.?|#|id)\b", r"\[#?[a-z]*-?\d{3,}\]",
    r"\b(?:this|the) (?:mailbox|inbox|e-?mail address|address|account) is (?:not|no longer) (?:monitored|in use|"
    r"active|checked)\b",
    r"\bunmonitored\b", r"\bour (?:support|service|sales) team will\b",
    r"\bwe will (?:respond|reply|get back) to (?:your|all) (?:inquiry|enquiry|request|message|e-?mail)s?\b",
    r"\bour (?:business|office|opening) hours are\b",
    # German
    r"\bautomatische? (?:antwort|nachricht|benachrichtigung|e-?mail|eingangsbestatigung)\b",
    r"\bautomatisch (?:generiert|erstellt|versendet|versandt)\b", r"\beingangsbestatigung\b",
    r"\b(?:ihre|deine) (?:nachricht|anfrage|e-?mail) (?:ist|wurde) (?:bei uns )?(?:eingegangen|erhalten|"
    r"weitergeleitet)\b",
    r"\bwir haben (?:ihre|deine) (?:nachricht|anfrage|e-?mail) erhalten\b", r"\bticketnummer\b", r"\bvorgangsnummer\b",
    r"\bbitte antworten sie nicht\b",
    # French
    r"\b(?:reponse|message|accuse de reception) automatique\b", r"\bgenere automatiquement\b",
    r"\bnous avons bien recu votre (?:message|demande|e-?mail|courriel)\b", r"\bmerci de ne pas repondre\b",
    r"\bvotre (?:message|demande) a bien ete (?:recu|enregistre)e?\b", r"\bnumero de (?:ticket|dossier)\b",
    # Spanish
    r"\b(?:respuesta|mensaje|correo) automatic[oa]\b", r"\bgenerado automaticamente\b",
    r"\bhemos recibido (?:su|tu) (?:mensaje|correo|solicitud|consulta|e-?mail)\b",
    r"\bno responda (?:a )?este\b", r"\bnumero de (?:ticket|caso|incidencia)\b",
    # Dutch
    r"\bautomatisch (?:antwoord|bericht|gegenereerd|verzonden)\b", r"\bautomatische (?:reactie|e-?mail|melding)\b",
    r"\b(?:wij|we) hebben (?:uw|je) (?:bericht|e-?mail|aanvraag|vraag) (?:goed )?ontvangen\b",
    r"\b(?:uw|je) (?:bericht|e-?mail|aanvraag) is (?:goed )?ontvangen\b", r"\bticketnummer\b",
    # Portuguese
    r"\b(?:resposta|mensagem) automatica\b", r"\bgerad[oa] automaticamente\b",
    r"\brecebemos (?:a |o )?(?:sua|seu|tua|teu) (?:mensagem|solicitacao|e-?mail|pedido|contato)\b",
    r"\bnao responda (?:a )?este\b", r"\bnumero do (?:chamado|protocolo|ticket)\b", r"\bprotocolo\b",
    # Italian
    r"\b(?:risposta|messaggio) automatic[oa]\b", r"\bgenerat[oa] automaticamente\b",
    r"\babbiamo ricevuto (?:il |la )?(?:suo|tuo|sua|tua|vostro|vostra) (?:messaggio|e-?mail|richiesta)\b",
    r"\bnon rispondere a questo\b", r"\bnumero (?:di )?(?:ticket|pratica)\b",
)
AUTO_WEAK = _rx(
    r"\bwithin (?:\d+|one|two|three|24|48|72) (?:business |working )?(?:hours|days|business days|working days)\b",
    r"\bthank you for (?:contacting|reaching out to|writing to) (?:us|our)\b", r"\bnoreply\b", r"\bno-reply\b",
    r"\bwe (?:will|'ll) (?:get back to you|respond|reply|be in touch) (?:as soon as|shortly|within)\b",
    r"\bbusiness hours\b", r"\bkind regards,? (?:the )?\w+ (?:team|support)\b", r"\b(?:support|service) team\b",
    r"\binnerhalb von (?:\d+|24|48) (?:stunden|werktagen)\b", r"\bsous (?:\d+|24|48) ?h",
    r"\ben (?:un plazo de )?(?:\d+|24|48) horas\b", r"\bbinnen (?:\d+|24|48) (?:uur|werkdagen)\b",
    r"\bem (?:ate )?(?:\d+|24|48) horas\b", r"\bentro (?:\d+|24|48) ore\b",
)
AUTO_SENDER = re.compile(r"^(?:no-?reply|do-?not-?reply|donotreply|notifications?|notify|auto-?reply|autoresponder|"
                         r"support|helpdesk|help|tickets?|service|servicedesk|customerservice|info)[\w.+-]*@")

WRONG_STRONG = _rx(
    # English
    r"\b(?:not|wrong|isn't|am not|i'm not) (?:really |actually )?(?:the )?(?:right|best|correct|appropriate|relevant|"
    r"wrong) (?:person|contact|guy|individual|department|team|address|recipient|point of contact)\b",
    r"\bwrong (?:person|contact|guy|department|address|recipient|lady)\b",
    r"\b(?:got|have|emailed|reached|contacted|found) the wrong\b", r"\byou (?:meant|wanted|intended) to (?:e-?mail|"
    r"contact|reach|write)\b", r"\bnamesake\b",
    r"(?:^|[.!?] )(?:forwarded|forwarding|passing (?:this|it)|passed (?:this|it)) (?:on |along )?to\b",
    r"\bforwarded (?:this |it |your (?:e-?mail|message|note) )?to (?:my|our|the)\b",
    r"\b(?:i'm|i am|im) not (?:responsible|in charge|the decision[- ]maker|involved|the one|the person)\b",
    r"\bnot (?:my|in my) (?:area|department|responsibility|remit|call|decision|wheelhouse|domain|role|job)\b",
    r"\b(?:doesn't|does not|don't|do not) (?:fall under|sit with|report to) me\b",
    r"\b(?:i've|i have|i|i'll|i will|have|i'm|i am) (?:just )?(?:forwarded|forwarding|fwd|fwded|copied|cc'd|cc'ed|cced|"
    r"looped in|looping in|passed (?:it|this|your (?:note|email|message)) (?:on |along )?to|passed (?:it |"
    r"this )?(?:on|along))\b",
    r"\b(?:cc'?ing|cc'?ed|ccing|copying|looping in|loop in) (?:in )?(?:my|our|the|her|him|them|[a-z]+ (?:who|from|"
    r"in))\b",
    r"\b(?:you should|you'd better|you might want to|better to|best to|please|kindly|you can|you could|try) (?:talk|"
    r"speak|"
    r"reach out|get in touch|contact|connect|write|email|e-mail)(?: to| with)?\b(?! me\b| us\b)(?=.{0,80}\b(?:who|"
    r"colleague|head|manager|director|team|department|our|my|she|he|[a-z0-9._-]+@))",
    r"\b(?:handles|owns|manages|looks after|is responsible for|is in charge of|takes care of|oversees|decides on|"
    r"makes (?:those|these|the) decisions)\b(?: (?:this|that|these|those|our|all|the|sales|marketing|procurement|"
    r"purchasing|vendor|tooling|it|such|any)\b)?",
    r"\bis the (?:right|best|correct|appropriate) (?:person|contact|one)\b",
    r"\bwould be (?:the|a) better (?:contact|person|fit)\b",
    r"\b(?:i|we) (?:don't|do not) (?:handle|deal with|manage|make decisions|decide)\b",
    # German
    r"\bnicht (?:der|die|das) (?:richtige|zustandige|passende|korrekte)n? (?:ansprechpartner|ansprechpartnerin|person|"
    r"adresse|kontakt)?\b",
    r"\bnicht zustandig\b", r"\b(?:wenden sie sich|wende dich|bitte wenden sie sich) (?:bitte )?an\b",
    r"\bzustandig (?:ist|sind|ware)\b",
    r"\b(?:ist|ware) (?:der|die) richtige\b", r"\bweitergeleitet\b", r"\bweiterleiten\b", r"\bleite (?:ich|es|das)\b",
    r"\b(?:kummert sich|verantwortlich (?:ist|fur))\b", r"\bin (?:kopie|cc) (?:gesetzt|genommen)\b",
    # French
    r"\bpas (?:la|le) (?:bonne?|bon) (?:personne|interlocuteur|interlocutrice|contact)\b",
    r"\bje ne suis pas (?:en charge|responsable|concerne|la bonne|le bon|decisionnaire)\b",
    r"\b(?:contactez|adressez-vous a|voyez avec|ecrivez a|rapprochez-vous de)\b(?![- ]?(?:moi|nous)\b)",
    r"\b(?:j'ai )?(?:transmis|transfere|fait suivre|relaye)\b", r"\bs'occupe (?:de|des)\b",
    r"\best (?:le|la) (?:bon|bonne|meilleure?) (?:interlocut|personne|contact)", r"\ben copie\b",
    # Spanish
    r"\bno soy (?:la persona|el contacto) (?:adecuad|indicad|correct|apropiad)",
    r"\bno (?:me corresponde|es mi area|soy (?:el|la) responsable|soy quien decide|llevo (?:yo )?este tema)\b",
    r"\b(?:contacte|contacta|hable|habla|escriba|escribe|dirijase|dirigete) (?:con|a)\b(?! (?:mi|nosotros|usted)\b)",
    r"\b(?:he reenviado|reenvie|reenvio|he pasado|le paso|te paso|lo paso|he trasladado|traslado)\b",
    r"\bse encarga\b", r"\bes (?:el|la) (?:responsable|persona (?:adecuada|indicada))\b", r"\ben copia\b",
    # Dutch
    r"\bniet de (?:juiste|aangewezen|goede) (?:persoon|contactpersoon|persoon hiervoor)\b",
    r"\bniet (?:verantwoordelijk|de juiste|degene)\b", r"\bneem (?:hiervoor |daarvoor )?contact op met\b",
    r"\b(?:kunt u|kun je|kan je|wend u) (?:(?:zich|je) )?(?:contact opnemen met|tot|beter)\b", r"\bdoorgestuurd\b",
    r"\bgaat (?:hier|daar)over\b", r"\bis (?:hier|daar)voor verantwoordelijk\b", r"\bin de cc\b",
    # Portuguese
    r"\bnao sou a pessoa (?:certa|indicada|correta|adequada)\b", r"\bnao sou (?:o|a) responsavel\b",
    r"\b(?:entre|entra) em contato com\b(?! (?:a gente|nos|voce)\b)", r"\bfale com\b(?! (?:a gente|voce|vc|nos)\b)",
    r"\bencaminhei\b",
    r"\bencaminhar(?:ei)?\b", r"\bcuida (?:disso|deste|desse|de)\b", r"\be (?:o|a) responsavel\b", r"\bem copia\b",
    # Italian
    r"\bnon sono la persona (?:giusta|adatta|corretta|indicata)\b",
    r"\bnon (?:sono (?:io )?(?:il|la) responsabile|mi occupo|e di mia competenza|e mia competenza)\b",
    r"\b(?:contatti|contattate|scriva a|scrivete a|rivolgersi a|si rivolga a|rivolgetevi a)\b(?=.{0,60}(?:collega|"
    r"responsabile|@|ufficio|reparto|direttore|dott|sig))",
    r"\b(?:ho inoltrato|inoltro|ho girato|giro la|giro il)\b", r"\bsi occupa\b", r"\bin copia\b",
)
NOT_NOW_STRONG = _rx(
    # English
    r"\bnot (?:right )?now\b", r"\bnot at (?:this|the moment|the minute|present|this point|this stage)\b",
    r"\bnot (?:interested|a priority|a fit|relevant|looking|in the market|ready|something we)\b[^.!?\n]{0,30}"
    r"\b(?:right now|at the moment|at this time|at the minute|currently|for now|this year|this quarter|just yet|yet|"
    r"at present|at this point|this time)\b",
    r"\b(?:right now|at the moment|at this time|for now|currently|at present)\b[^.!?\n]{0,15}"
    r"\b(?:not|n't|no budget|no bandwidth|no capacity|swamped|too busy|focused on|frozen)\b",
    r"\b(?:maybe|perhaps|possibly|potentially) (?:later|next|in (?:a|the|q\d|\d|six|three|two|a few|a couple)|after|"
    r"down the (?:road|line)|early|towards|around|once)\b",
    r"\b(?:reach|circle|check|touch|follow|ping|come|get|call|contact|write|email|try)(?: me| us)? "
    r"(?:back |base |up |out |in touch |again )?(?:with (?:me|us) )?(?:again )?(?:in|next|after|around|early|towards|"
    r"later|once|closer to|come|at the (?:end|start|beginning))\b[^.!?\n]{0,20}\b(?:q[1-4]|months|quarter|"
    r"year|january|february|march|april|may|june|july|august|september|october|november|december|spring|summer|"
    r"fall|autumn|winter|new year|holidays|budget|planning|fiscal|h[12])\b",
    r"\bcircle back\b", r"\brevisit (?:this|it|in|next|later|after)\b", r"\b(?:bad|poor|terrible|awkward) timing\b",
    r"\btiming (?:isn't|is not|isnt|just isn't) (?:right|great|good|ideal)\b", r"\bnot the right time\b",
    r"\bbudget (?:is |has been |was )?(?:frozen|cut|allocated|spent|locked|already allocated|tight|exhausted)\b",
    r"\bno budget (?:this|until|right now|for (?:this|the rest)|left)\b",
    r"\bbudgets? (?:are|is) (?:set|done|closed)\b",
    r"\b(?:ask|try) (?:me|us) again\b", r"\bkeep in touch\b", r"\bnot yet\b",
    r"\b(?:later|early|end of) (?:this|next) year\b",
    r"\bafter (?:the holidays|new year|the new year|q[1-4]|our (?:launch|migration|reorg|fiscal|planning|"
    r"funding|merger|audit|busy season))\b",
    r"\b(?:too busy|swamped|slammed|underwater|heads-down|heads down)\b", r"\bmid-?year\b",
    r"\bhiring freeze\b", r"\bspending freeze\b", r"\bnot until\b",
    r"\bno (?:bandwidth|capacity|budget|time|resources|headcount)\b[^.!?\n]{0,20}\b(?:right now|at the moment|"
    r"currently|"
    r"this (?:year|quarter)|for now|until|at present)\b", r"\bput (?:this|it) on hold\b", r"\bon hold\b",
    r"\bdown the (?:road|line)\b", r"\bin (?:a few|a couple of|\d|two|three|six|several) (?:months|quarters)\b",
    # German
    r"\b(?:momentan|derzeit|aktuell|im moment|zurzeit|zur zeit|vorerst)\b[^.!?\n]{0,30}\b(?:nicht|kein|keine|keinen|"
    r"leider nicht)\b", r"\bvielleicht (?:spater|nachstes|im|in|zu einem)\b",
    r"\b(?:melden sie sich|kommen sie|meld dich|komm) (?:gerne? |doch |bitte )?(?:im|in|nach|nachstes|wieder|"
    r"spater|zu)\b", r"\b(?:im|nachstes|kommendes|nachsten|kommenden) (?:jahr|quartal)\b", r"\bim neuen jahr\b",
    r"\b(?:gerade|momentan|zeitlich|derzeit) (?:ungunstig|schlecht)\b", r"\bbudgetstopp\b",
    r"\bspater (?:nochmal|noch einmal|wieder|im jahr)\b", r"\bzu einem spateren zeitpunkt\b",
    r"\bzeitpunkt (?:ist )?(?:ungunstig|schlecht|passt nicht)\b", r"\bkein budget\b", r"\bin (?:ein paar|einigen|"
    r"\d|zwei|drei|sechs) monaten\b",
    # French
    r"\bpas (?:pour le moment|maintenant|pour l'instant|en ce moment|tout de suite|cette annee|encore)\b",
    r"\bplus tard\b", r"\bl'annee prochaine\b", r"\ble (?:trimestre|semestre) prochain\b",
    r"\bdans (?:quelques|\d+|deux|trois|six) mois\b", r"\brecontactez[- ]?(?:moi|nous)\b",
    r"\brevenez vers (?:moi|nous)\b", r"\bpas le bon moment\b", r"\bau (?:premier|deuxieme|second) semestre\b",
    r"\ba la rentree\b", r"\bapres (?:l'ete|les fetes|les vacances)\b",
    # Spanish
    r"\bahora (?:mismo )?no\b", r"\b(?:en este momento|por ahora|de momento|por el momento|actualmente)\b"
    r"[^.!?\n]{0,20}\bno\b", r"\bmas adelante\b", r"\b(?:el )?(?:proximo|siguiente) (?:ano|trimestre|semestre)\b",
    r"\bdentro de (?:unos|\d+|dos|tres|seis) meses\b", r"\bno es (?:el|buen) momento\b", r"\bsin presupuesto\b",
    r"\b(?:vuelva|vuelve|vuelvan) a (?:escribir|contactar)(?:me|nos)? (?:en|despues|mas|el)\b",
    r"\b(?:escribame|escribeme|contacteme|contactame|contactenos) (?:en|despues|mas adelante|el proximo)\b",
    # Dutch
    r"\bnu (?:even |eventjes )?niet\b", r"\b(?:op dit moment|momenteel|voorlopig|op het moment)\b"
    r"[^.!?\n]{0,25}\b(?:niet|geen)\b", r"\bvolgend (?:jaar|kwartaal)\b", r"\bover (?:een paar|enkele|\d+|twee|drie|"
    r"zes) maanden\b", r"\bniet het juiste moment\b", r"\bgeen budget\b", r"\b(?:misschien )?later (?:dit jaar|"
    r"nog eens|opnieuw)\b", r"\bna de (?:zomer|vakantie|feestdagen)\b", r"\bneem (?:later|over|na)\b",
    # Portuguese
    r"\bagora nao\b", r"\b(?:no momento|por enquanto|neste momento|atualmente|por agora)\b[^.!?\n]{0,20}\bnao\b",
    r"\bmais (?:para )?(?:frente|adiante|tarde)\b", r"\b(?:no )?(?:proximo|que vem) (?:ano|trimestre|semestre)\b",
    r"\bano que vem\b", r"\bdaqui a (?:alguns|\d+|dois|tres|seis) meses\b", r"\bnao e (?:o )?(?:bom )?momento\b",
    r"\bsem orcamento\b",
    r"\b(?:volte|retorne|procure-me|procure-nos) (?:a falar |a me procurar )?(?:no|em|daqui|mais)\b",
    # Italian
    r"\bnon (?:ora|adesso|in questo momento|al momento|per ora|ancora)\b", r"\b(?:al momento|per ora|in questo "
    r"momento|attualmente|per il momento)\b[^.!?\n]{0,20}\bno\b", r"\bpiu avanti\b",
    r"\b(?:il )?prossimo (?:anno|trimestre|semestre)\b", r"\bl'anno prossimo\b",
    r"\btra (?:qualche|\d+|due|tre|sei) mesi\b",
    r"\b(?:ricontattatemi|ricontattami|ricontattarmi|risentiamoci|riscrivetemi|riscrivimi)\b",
    r"\bnon e il momento\b", r"\b(?:senza|nessun) budget\b", r"\bdopo (?:l'estate|le ferie|le feste)\b",
)
# Weaker timing hints: "not now" only when nothing says "no".
NOT_NOW_WEAK = _rx(
    r"\bnext (?:fiscal )?(?:year|quarter|budget|fiscal)\b", r"\b(?:end|start|beginning) of (?:q[1-4]|the year|next)\b",
    r"\bno decision (?:before|until)\b", r"\bstill evaluating\b", r"\bin q[1-4]\b",
    r"\blater (?:this|next|in the) (?:year|quarter|month|spring|summer|fall|autumn|winter)\b",
    r"\bnach dem (?:sommer|jahreswechsel)\b", r"\bplus tard\b", r"\bmas adelante\b",
)
NOT_INTERESTED = _rx(
    # English
    r"\b(?:not|never|no longer|n't|isn't|wasn't|aren't) (?:really |very |at all |particularly |remotely )?"
    r"(?:be )?interest(?:ed|ing to us)\b", r"\bno interest\b", r"\bnot interested\b",
    r"\bno,? (?:thanks|thank you|thx|ty|thankyou)\b", r"\bno thanks\b", r"\bthanks,? but no\b", r"\bno,? we're good\b",
    r"\bnot (?:a )?(?:good )?(?:fit|match)\b", r"\bnot relevant\b", r"\bnot for us\b", r"\bnot for me\b",
    r"\b(?:we|i) (?:don't|do not|dont) (?:need|want|require|have (?:a )?need)\b", r"\bno need\b",
    r"\b(?:we are|we're|i'm|i am) (?:all set|good|covered|fine|sorted|happy with|satisfied with)\b", r"\ball set\b",
    r"\balready (?:have|use|using|work with|working with|signed|partnered|got|invested|built|chose|picked|went with|"
    r"in contract|under contract|have a)\b", r"\b(?:we|i)(?: will|'ll) pass\b", r"\bpass on (?:this|that)\b",
    r"\bnot (?:looking|in the market|buying|shopping)\b", r"\bdon't bother\b",
    r"\b(?:do|handle) (?:this|that|it) in[- ]house\b",
    r"\bin-?house (?:team|solution|tool)\b", r"\b(?:don't|do not) see (?:a|the) (?:fit|need|value)\b",
    r"\b(?:politely |respectfully )?decline\b",
    r"\bhow did you get (?:my|this|our) (?:e-?mail|address|contact|details|number)\b",
    r"\bnot something (?:we|i)(?:'re| are| am)? (?:need|want|interested|looking)\b", r"^\W*(?:no|nope|nah|no\.)\W*$",
    r"\bno,? (?:we|i) (?:don't|are not|aren't|won't)\b", r"\bwe(?: have|'ve) no (?:need|use)\b",
    r"\bnot a priority\b", r"\bnot worth\b", r"\b(?:no|zero) appetite\b",
    r"\b(?:isn't|is not|isnt|wouldn't be|won't be|not really) (?:a )?(?:good |great |real )?(?:fit|match)\b",
    r"\bin-?house\b", r"(?:^|[.!?] )pass[.!]?(?: |$)", r"^\W*(?:nope|nah)\b",
    r"\b(?:wouldn't|won't|will not|would not) (?:be )?(?:buy|buying|purchase|purchasing|need|needing|use|using)\b",
    r"\b(?:do|handle|build|built|manage) (?:this|it|that|everything|something) (?:ourselves|internally)\b",
    r"\b(?:we are|we're|i am|i'm) (?:very |quite |perfectly )?(?:happy|satisfied|content) with\b",
    r"\bzufrieden mit\b", r"\b(?:satisfaits|satisfait|contents?) de (?:notre|nos|notre solution)\b",
    r"\b(?:contentos|satisfechos) con\b", r"\btevreden (?:met|over)\b", r"\bsatisfeitos com\b",
    r"\bsoddisfatti (?:di|del|della|con)\b",
    # German
    r"\bkein(?:erlei)? (?:interesse|bedarf)\b", r"\bnicht interessiert\b", r"\binteressiert (?:uns|mich) nicht\b",
    r"\bnein,? danke\b", r"\b(?:danke|vielen dank),? (?:aber )?(?:nein|kein)\b", r"\bbrauchen wir nicht\b",
    r"\bbrauchen (?:wir|ich) (?:aktuell |derzeit )?(?:nicht|keine|kein)\b",
    r"\bhaben (?:bereits|schon) (?:eine|einen|ein|unsere?n?)\b", r"\bsind (?:gut |bestens |bereits )?versorgt\b",
    r"\bpasst nicht\b", r"\bnicht (?:relevant|interessant)\b", r"\bkein thema\b", r"\b(?:danke|vielen dank),? aber\b",
    # French
    r"\bpas interesse", r"\bne (?:m'|nous )?interesse (?:pas|nullement|absolument pas)\b", r"\bnon,? merci\b",
    r"\b(?:pas|aucun) (?:de )?besoin\b", r"\bnous avons deja\b", r"\bj'ai deja\b", r"\bdeja equipe",
    r"\bpas pertinent\b",
    r"\bne correspond pas\b", r"\baucun interet\b", r"\bsans interet\b", r"\bpas pour nous\b",
    # Spanish
    r"\bno (?:me|nos) interesa\b", r"\bno (?:estoy|estamos) interesad", r"\bno,? gracias\b",
    r"\bno (?:lo )?(?:necesitamos|necesito)\b", r"\bya (?:tenemos|contamos con|trabajamos con|usamos|utilizamos)\b",
    r"\bno es (?:relevante|para nosotros)\b", r"\bsin interes\b", r"\bningun interes\b",
    # Dutch
    r"\bgeen (?:interesse|behoefte)\b", r"\bniet geinteresseerd\b", r"\bnee,? (?:dank|bedankt)\b",
    r"\bniet (?:relevant|nodig|voor ons|interessant)\b", r"\bhebben (?:al|reeds) (?:een|iets|onze|ons)\b",
    r"\bwerken al met\b", r"\bgebruiken al\b",
    # Portuguese
    r"\bnao (?:tenho|temos) interesse\b", r"\bnao (?:estou|estamos) interessad", r"\bnao,? obrigad",
    r"\bnao (?:precisamos|preciso)\b", r"\bja (?:temos|usamos|utilizamos|trabalhamos com)\b", r"\bsem interesse\b",
    r"\bnao (?:e relevante|faz sentido|e para nos)\b", r"\bnenhum interesse\b",
    # Italian
    r"\bnon (?:sono|siamo) interessat", r"\bnon (?:mi|ci) interessa\b", r"\bno,? grazie\b",
    r"\bnon (?:ne )?abbiamo bisogno\b", r"\b(?:abbiamo|usiamo|utilizziamo) gia\b", r"\bnessun interesse\b",
    r"\bnon e (?:rilevante|di nostro interesse|per noi)\b",
)
INTERESTED = _rx(
    # English
    r"\binterested\b", r"\binteresting\b", r"\bsounds (?:good|great|interesting|intriguing|promising|useful|"
    r"relevant|like)\b", r"\b(?:let's|lets|let us|happy to|glad to|would love to|i'd love to|keen to|open to|"
    r"willing to|up for|down to|we should|can we|could we|shall we|i'd like to|we'd like to|would like to) "
    r"(?:a )?(?:quick )?(?:chat|talk|connect|meet|hop on|jump on|learn|hear|see|discuss|explore|speak|find|"
    r"set up|book|schedule|try|test|pilot|get|have|take)\b",
    r"\b(?:send|share|forward|email) (?:me|us|over)? ?(?:some |more |the |a |your )?(?:info|information|details|deck|"
    r"pricing|prices|case stud|overview|one-?pager|demo|brochure|proposal|quote|materials|slides|link)",
    r"\btell me more\b", r"\bmore (?:info|information|details)\b", r"\blearn more\b",
    r"\b(?:book|schedule|set up|arrange|find|grab|put) (?:a |some |15 |30 |20 )?(?:min(?:ute)?s? )?(?:call|time|"
    r"meeting|demo|"
    r"slot|chat|session)\b", r"\bdemo\b", r"\bcalendly\b", r"\bcalendar (?:link|invite)\b",
    r"\bsend (?:an? |me an? )?invite\b",
    r"\bwhat (?:does|do|would) (?:it|this|you|that) cost\b", r"\bpricing\b", r"\bhow much\b",
    r"\b(?:i'm|i am|we're|we are) (?:free|available|around)\b", r"\bworks for me\b", r"\byes,? please\b",
    r"^\W*(?:yes|sure|ok|okay|yep|yeah|absolutely|definitely|of course)\b", r"\bcurious\b", r"\bintrigued\b",
    r"\b(?:can|could|would) you (?:send|share|explain|tell|walk|show|call|give|do)\b",
    r"\bwhen are you (?:free|available)\b",
    r"\bwhat time\b", r"\b(?:call|ring|phone) me\b", r"\bgive me a call\b", r"\b(?:tuesday|monday|wednesday|thursday|"
    r"friday) (?:works|at|afternoon|morning)\b", r"\b\d{1,2}(?::\d{2})? ?(?:am|pm)\b", r"\bhow does (?:it|this) work\b",
    r"\b(?:sounds|looks) (?:like )?(?:a )?(?:fit|good fit|something)\b", r"\bwe(?:'ve| have) been looking\b",
    r"\b(?:timing|this) is (?:perfect|great|good)\b", r"\blet's do it\b", r"\bcount (?:me|us) in\b",
    # German
    r"\binteressant\b", r"\binteressiert\b", r"\bgerne?\b", r"\bklingt (?:gut|spannend|interessant)\b",
    r"\b(?:lassen sie uns|lass uns) (?:sprechen|telefonieren|reden|austauschen)\b", r"\btermin",
    r"\b(?:schicken|senden) sie (?:mir |uns )?(?:gerne )?(?:mehr|weitere|unterlagen|infos|informationen)\b",
    r"\bmehr (?:infos|informationen|details)\b", r"\bwas kostet\b", r"\bpreise?\b", r"\btelefonat\b",
    r"\bpasst (?:mir|gut|uns)\b", r"\bwann haben sie zeit\b", r"\brufen sie (?:mich )?an\b",
    r"\bkurzes? (?:gesprach|call)\b",
    # French
    r"\binteresse(?:e|s|es)?\b", r"\binteressant", r"\bvolontiers\b", r"\bavec plaisir\b",
    r"\b(?:envoyez|envoyer|transmettez)[- ]moi\b", r"\bplus d'(?:infos|informations|elements|details)\b",
    r"\b(?:rendez-vous|rdv|un appel|un echange|un call|une demo|une demonstration)\b",
    r"\bquels? (?:sont vos |est le )?(?:prix|tarifs?)\b",
    r"\bcombien\b", r"\bca m'interesse\b", r"\bappelez[- ]moi\b", r"\bd'accord pour\b",
    # Spanish
    r"\bme interesa\b", r"\binteresad[oa]s?\b", r"\binteresante\b",
    r"\b(?:envie|envieme|mandeme|mandame|enviame|envianos|envienos) (?:mas )?(?:informacion|info|detalles)\b",
    r"\bmas (?:informacion|info|detalles)\b", r"\b(?:una )?(?:llamada|reunion|videollamada)\b", r"\bcuanto cuesta\b",
    r"\bprecios?\b", r"\bhablemos\b", r"\bcon gusto\b", r"\bencantad[oa]\b", r"\bsuena (?:bien|interesante)\b",
    r"\bllameme\b", r"\bllamame\b",
    # Dutch
    r"\bgeinteresseerd\b", r"\binteresse\b", r"\binteressant\b", r"\bklinkt (?:goed|interessant|leuk)\b", r"\bgraag\b",
    r"\b(?:stuur|stuurt) (?:me|mij|ons) (?:meer )?(?:informatie|info|details)\b",
    r"\b(?:afspraak|belletje|gesprek|kennismaking)\b",
    r"\bwat kost\b", r"\bprijs\b", r"\bbel (?:me|mij)\b",
    # Portuguese
    r"\binteress(?:e|ado|ada|ados|ante)\b", r"\btenho interesse\b",
    r"\b(?:me |nos )?(?:envie|envia|mande|manda) (?:mais )?(?:informacoes|informacao|detalhes|info)\b",
    r"\bmais (?:informacoes|detalhes)\b", r"\b(?:uma )?(?:reuniao|chamada|ligacao|conversa)\b", r"\bquanto custa\b",
    r"\bprecos?\b", r"\bvamos conversar\b", r"\bcom prazer\b", r"\bparece (?:bom|interessante)\b", r"\bme liga\b",
    # Italian
    r"\binteressat[oaie]\b", r"\binteressante\b", r"\bmi interessa\b",
    r"\b(?:inviatemi|mandatemi|mi mandi|mi invii|inviami|mandami) (?:maggiori |piu )?(?:informazioni|info|dettagli)\b",
    r"\bmaggiori (?:informazioni|dettagli)\b", r"\b(?:una )?(?:chiamata|call|riunione|telefonata|videochiamata)\b",
    r"\bquanto costa\b", r"\bprezz[oi]\b", r"\bvolentieri\b", r"\bsentiamoci\b", r"\bmi chiami\b",
)


# --------------------------------------------------------------------------------------------- dates

_MONTHS = {
    1: "january jan januar janner jaenner janvier janv enero ene januari janeiro gennaio gen",
    2: "february feb februar fevrier fevr fev febrero februari fevereiro febbraio",
    3: "march mar marz maerz mars marzo maart mrt marco",
    4: "april apr avril avr abril aprile",
    5: "may mai mayo mei maio maggio",
    6: "june jun juni juin junio junho giugno giu",
    7: "july jul juli juillet juil julio julho luglio lug",
    8: "august aug aout agosto augustus",
    9: "september sep sept septembre septiembre setiembre setembro settembre",
    10: "october oct oktober okt octobre octubre outubro ottobre ott",
    11: "november nov novembre noviembre novembro",
    12: "december dec dezember dez decembre diciembre dic dezembro dicembre",
}
MONTH = {w: m for m, words in _MONTHS.items() for w in words.split()}
_MONTH_RX = "|".join(sorted(MONTH, key=len, reverse=True))
_WEEKDAYS = {
    0: "monday montag lundi lunes maandag segunda-feira segunda lunedi",
    1: "tuesday dienstag mardi martes dinsdag terca-feira terca martedi",
    2: "wednesday mittwoch mercredi miercoles woensdag quarta-feira quarta mercoledi",
    3: "thursday donnerstag jeudi jueves donderdag quinta-feira quinta giovedi",
    4: "friday freitag vendredi viernes vrijdag sexta-feira sexta venerdi",
    5: "saturday samstag sonnabend samedi sabado zaterdag sabato",
    6: "sunday sonntag dimanche domingo zondag domenica",
}
WEEKDAY = {w: d for d, words in _WEEKDAYS.items() for w in words.split()}
_WEEKDAY_RX = "|".join(sorted(WEEKDAY, key=len, reverse=True))

_D = r"(?P<d>[0-3]?\d)"
_TEXT_DMY = re.compile(_D + r"(?:st|nd|rd|th|er|e|o|°|º|\.)?\s*(?:de |of |-)?\s*(?P<m>" + _MONTH_RX +
                       r")\b\.?(?:,?\s*(?:de |del )?(?P<y>20\d\d)\b)?")
_TEXT_MDY = re.compile(r"\b(?P<m>" + _MONTH_RX + r")\.?\s+(?:the )?" + _D +
                       r"(?:st|nd|rd|th)?\b(?!:|\d)(?:,?\s*(?P<y>20\d\d)\b)?")
_ISO = re.compile(r"\b(?P<y>20\d\d)-(?P<m>[01]?\d)-(?P<d>[0-3]?\d)\b")
_NUM_Y = re.compile(r"\b(?P<a>[0-3]?\d)(?P<sep>[./-])(?P<b>[01]?\d)(?P=sep)(?P<y>(?:20)?\d\d)\b(?![./-]?\d)")
_NUM_DOT = re.compile(r"\b(?P<a>[0-3]?\d)\.(?P<b>[01]?\d)\.?(?![\d])(?!\s?(?:uhr|h\b|am\b|pm\b|%))")
_NUM_SLASH = re.compile(r"\b(?P<a>[0-3]?\d)/(?P<b>[0-3]?\d)\b(?![/\d])")

RETURN_KW = _rx(r"\bback\b", r"\breturn(?:ing|s)?\b", r"\bin the office\b", r"\bresum", r"\breachable\b",
                r"\bzuruck\b", r"\bwieder\b", r"\bab\b", r"\bab dem\b", r"\bretour\b", r"\bde vuelta\b",
                r"\bregres[oa]\b", r"\bregresare\b", r"\bvolvere\b", r"\breincorporo\b", r"\bterug\b", r"\bweer\b",
                r"\bvanaf\b", r"\bvolto\b", r"\bvoltarei\b", r"\bretorno\b", r"\bregresso\b", r"\bde volta\b",
                r"\brientr[oe]\b", r"\brientrero\b", r"\bdi ritorno\b", r"\btorno\b", r"\bavailable\b",
                r"\berreichbar\b", r"\bdisponible\b", r"\bbereikbaar\b", r"\bdisponivel\b", r"\bdisponibile\b")
RETURN_AFTER = _rx(r"\b(?:wieder|zuruck|weer|terug|de retour)\b")
UNTIL_KW = _rx(r"\buntil\b", r"\btill\b", r"\btil\b", r"\bthrough\b", r"\bthru\b", r"\bbis\b", r"\bjusqu'(?:au|a|en)\b",
               r"\bhasta\b", r"\btot(?: en met)?\b", r"\bt/m\b", r"\bate\b", r"\bfino (?:al|a|all')\b", r"\bal\b",
               r"\bto\b", r"\b-\s?", r"\bau\b", r"\ba\b")
_TOMORROW = re.compile(r"\b(?:tomorrow|demain|manana|amanha|domani)\b|\bab morgen\b|\bmorgen (?:wieder|zuruck|"
                       r"terug|weer)\b")
_NEXT_WEEK = re.compile(r"\b(?:next week|nachste woche|naechste woche|la semaine prochaine|semaine prochaine|"
                        r"la (?:proxima|semana que viene)|proxima semana|volgende week|semana que vem|"
                        r"(?:la )?prossima settimana|settimana prossima)\b")
_ENGLISH = re.compile(r"\b(?:the|and|until|back|office|i am|i'm|will|return|returning|through)\b")


def _mkdate(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _infer_year(m: int, d: int, today: date) -> date | None:
    cand = _mkdate(today.year, m, d)
    if cand is None:
        cand = _mkdate(today.year + 1, m, d)  # 29 February
        return cand
    if cand < today - timedelta(days=30):
        cand = _mkdate(today.year + 1, m, d) or cand
    return cand


def _dates(t: str, today: date) -> list[tuple[int, date]]:
    """Every absolute date in ``t`` (folded text) with where it starts."""
    found: dict[int, tuple[int, date]] = {}
    taken: list[tuple[int, int]] = []

    def add(m: re.Match, dt: date | None) -> None:
        if dt is None:
            return
        s, e = m.span()
        if any(s < b and a < e for a, b in taken):
            return
        taken.append((s, e))
        found[s] = (s, dt)

    for m in _ISO.finditer(t):
        add(m, _mkdate(int(m["y"]), int(m["m"]), int(m["d"])))
    for rx in (_TEXT_DMY, _TEXT_MDY):
        for m in rx.finditer(t):
            month, d = MONTH[m["m"]], int(m["d"])
            y = m["y"]
            add(m, _mkdate(int(y), month, d) if y else _infer_year(month, d, today))
    us = bool(_ENGLISH.search(t))
    for m in _NUM_Y.finditer(t):
        a, b, y = int(m["a"]), int(m["b"]), int(m["y"])
        y = y + 2000 if y < 100 else y
        if m["sep"] == "." or a > 12 or not us:
            add(m, _mkdate(y, b, a))
        else:
            add(m, _mkdate(y, a, b) or _mkdate(y, b, a))
    for m in _NUM_DOT.finditer(t):
        a, b = int(m["a"]), int(m["b"])
        if 1 <= a <= 31 and 1 <= b <= 12:
            add(m, _infer_year(b, a, today))
    for m in _NUM_SLASH.finditer(t):
        a, b = int(m["a"]), int(m["b"])
        if (a, b) == (24, 7):
            continue
        if a > 12:
            add(m, _infer_year(b, a, today) if b <= 12 else None)
        elif b > 12 or us:
            add(m, _infer_year(a, b, today) if b <= 31 else None)
        else:
            add(m, _infer_year(b, a, today))
    return sorted(found.values())


def _near(rx: re.Pattern, t: str, pos: int, window: int = 45) -> bool:
    return rx.search(t, max(0, pos - window), pos) is not None


def _after_kw(text: str, pos: int) -> bool:
    """A return word right after the date ("ab 14.12. wieder erreichbar", "vanaf 14 december weer terug")."""
    return RETURN_AFTER.search(text, pos, pos + 35) is not None


def return_date(text: str, now: datetime | date) -> tuple[date | None, str]:
    """The return date an absence notice states (folded text), and how it was found; (None, "") when none is.
    A date after a return word ("back on", "zurück am", "de retour le") wins over one after an "until" word, which
    wins over any other future date; a weekday after one of those words is its next occurrence after ``now``."""
    today = now.date() if isinstance(now, datetime) else now
    best: tuple[int, date] | None = None
    for pos, dt in _dates(text, today):
        if dt < today - timedelta(days=1) or dt > today + timedelta(days=MAX_PAUSE_DAYS):
            continue
        score = 3 if _near(RETURN_KW, text, pos) or _after_kw(text, pos) else 2 if _near(UNTIL_KW, text, pos, 25) else 1
        if best is None or (score, dt) > best:
            best = (score, dt)
    if best is not None:
        return best[1], "date"
    for m in re.finditer(r"\b(?:" + _WEEKDAY_RX + r")\b", text):
        if _near(RETURN_KW, text, m.start(), 30) or _near(UNTIL_KW, text, m.start(), 20):
            wd = WEEKDAY[m.group(0)]
            ahead = (wd - today.weekday()) % 7 or 7
            return today + timedelta(days=ahead), "weekday"
    if _TOMORROW.search(text):
        return today + timedelta(days=1), "tomorrow"
    if _NEXT_WEEK.search(text):
        return today + timedelta(days=(7 - today.weekday()) or 7), "next week"
    return None, ""


# --------------------------------------------------------------------------------------------- referrals

_EMAIL = re.compile(r"[\w.%+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_HONORIFIC = (r"(?:(?:Mr|Mrs|Ms|Miss|Dr|Herr[n]?|Frau|M|Mme|Mlle|Sr|Sra|Srta|Dhr|Mevr|Sig|Sig\.ra|Dott|Dott\.ssa)"
              r"\.?\s+)?")
_NAME = (r"([A-ZÀ-ÖØ-Þ][\w'-]+(?:\s+(?:van der |van den |van |de la |de |del |da |di |von |le |la )?"
         r"[A-ZÀ-ÖØ-Þ][\w'-]+){0,2})")
_OWNER = (r"(?:(?i:my|our|mein(?:e[nr]?)?|unser(?:e[nr]?)?|mon|ma|notre|mi|nuestr[oa]|mijn|onze|meu|minha|noss[oa]|"
          r"il mio|la mia|il nostro|la nostra|the)\s+)?"
          r"(?:(?i:colleague|kolleg(?:e|in|en)|collègue|compañer[oa]|colega|collega|boss|manager|head of [a-z]+|"
          r"cfo|cro|cto|ceo|coo|vp of [a-z]+|vp [a-z]+|sales director|director of [a-z]+|chef|jefe|baas|"
          r"capo)\s*,?\s*)?")
_REFER = re.compile(
    r"(?i:contact|reach out to|talk to|speak to|speak with|get in touch with|connect with|write to|email|e-mail|"
    r"forwarded (?:this|it|your (?:email|message|note))? ?to|passed (?:this|it) (?:on |along )?to|cc'?(?:ing|'d|ed)?|"
    r"copying|looping in|loop in|wenden sie sich (?:bitte )?an|weitergeleitet an|weiterleiten an|kontaktieren sie|"
    r"contactez|adressez-vous à|voyez avec|écrivez à|transmis à|contacte con|contacta con|contacte a|hable con|"
    r"escriba a|reenviado a|neem contact op met|contact opnemen met|doorgestuurd naar|entre em contato com|fale com|"
    r"encaminhei para|contatti|si rivolga a|scriva a|rivolgersi a|inoltrato a)\s+" + _OWNER + _HONORIFIC + _NAME)
_IS_RIGHT = re.compile(
    r"(?i:right person|right contact|best person|best contact|better contact|ansprechpartner(?:in)?|zuständig|"
    r"interlocut\w+|responsable|la bonne personne|persona (?:adecuada|indicada|giusta)|contactpersoon|pessoa certa|"
    r"responsavel|responsável)\s+(?i:is|ist|est|es|è|é|would be|wäre|sería|seria|sarebbe|zou zijn|hiervoor is)\s+"
    + _OWNER + _HONORIFIC + _NAME)
_NOT_NAMES = {"I", "We", "Our", "The", "Sales", "Marketing", "HR", "IT", "Procurement", "Support", "Team", "Me",
              "Us", "You", "Thanks", "Thank", "Best", "Regards", "Hi", "Hello", "Dear", "Please", "This", "That",
              "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "January", "February", "March", "April", "May",
              "June", "July", "August", "September", "October", "November", "December", "Finance", "Legal",
              "Operations", "Engineering", "Purchasing", "Einkauf", "Vertrieb", "Il", "La", "Le", "Het", "De",
              "Die", "Der", "Das", "El", "Los", "Las", "Ich", "Je", "Yo", "Ik", "Eu", "Io", "Sie", "Vous", "Usted",
              "Him", "Her", "Them", "Someone", "Somebody", "Anyone", "Whoever", "Directly", "Linkedin", "LinkedIn"}


def find_referral(own_orig: str, sender: str = "") -> str | None:
    """The address (or else the name) a reply refers us to, from the sender's own words (case kept): the first
    address that is not the sender's, else a capitalised name after "contact", "talk to", "cc'ing", "wenden Sie
    sich an", "the right person is", ..."""
    sender = (sender or "").strip().lower()
    for m in _EMAIL.finditer(own_orig):
        addr = m.group(0).strip(".'-").lower()
        if addr != sender and not re.match(r"(?:no-?reply|do-?not-?reply|mailer-daemon|postmaster)@", addr):
            return addr[:320]
    found = sorted([*(_REFER.finditer(own_orig)), *(_IS_RIGHT.finditer(own_orig))], key=lambda m: m.start())
    for m in found:
        name = m.group(1).strip()
        if name.split()[0] in _NOT_NAMES or len(name) < 3:
            continue
        return name[:320]
    return None


# --------------------------------------------------------------------------------------------- classify

def _hit(rx: re.Pattern, *texts: str) -> str | None:
    for t in texts:
        if t:
            m = rx.search(t)
            if m:
                return m.group(0).strip() or m.group(0)
    return None


def classify(body: str | None, subject: str | None = None, sender: str | None = None,
             now: datetime | None = None) -> Classification:
    """The class of one inbound reply (see the module's docstring for the precedence)."""
    now = now or datetime.now(timezone.utc)
    today = now.date() if isinstance(now, datetime) else now
    t = _prepare(body if isinstance(body, str) else "", subject if isinstance(subject, str) else None,
                 sender if isinstance(sender, str) else None)
    own, flat, subj = t.own, t.flat, t.subject
    excerpt = t.own_orig.strip()

    def out(label: str, conf: float, *evidence: str, **kw) -> Classification:
        return Classification(label, round(conf, 2), tuple(e for e in evidence if e), text=excerpt, **kw)

    # 1. a mail system reporting a failure (nobody wrote it)
    daemon = bool(BOUNCE_SENDER.match(t.sender)) or bool(t.sender_name and BOUNCE_NAME.search(t.sender_name))
    dsn_subject = _hit(BOUNCE_SUBJECT, t.subject_raw)
    head = t.full[:6000]
    delay = _hit(BOUNCE_DELAY, t.subject_raw, head)
    code = _hit(BOUNCE_CODE, head)
    failed = _hit(BOUNCE_TEXT, head)
    if daemon or dsn_subject:
        ev = (f"sender {t.sender}" if daemon else "", f"subject: {dsn_subject}" if dsn_subject else "", code or "",
              failed or "")
        if code or failed or dsn_subject:
            return out("auto_reply", 0.99 if (code or failed) else 0.95, *ev, bounce=True)
        if delay:
            return out("auto_reply", 0.9, *ev, f"delayed: {delay}")

    # 2. an unsubscribe request anywhere in the sender's words wins over everything else
    unsub = _hit(UNSUBSCRIBE, flat, subj)
    if unsub:
        return out("unsubscribe", 0.97, f"unsubscribe: {unsub}")
    if own and len(flat) <= 60 and UNSUBSCRIBE_ALONE.match(flat) and not _POLITE_ONLY.match(flat):
        return out("unsubscribe", 0.95, f"unsubscribe (the whole reply): {flat[:40]}")
    if not own and subj and UNSUBSCRIBE_ALONE.match(subj) and not _POLITE_ONLY.match(subj):
        return out("unsubscribe", 0.9, f"unsubscribe (the subject): {subj[:40]}")

    # 3. a delivery failure told in the text (a relayed or forwarded notice)
    if failed and (code or _hit(BOUNCE_TEXT, head[head.find(failed) + len(failed):])):
        return out("auto_reply", 0.9, code or "", failed, bounce=True)
    if code and not own.strip():
        return out("auto_reply", 0.85, code, bounce=True)

    # what a person would say (matched once, when first needed)
    said: dict[str, str | None] = {}

    def say(name: str, rx: re.Pattern) -> str | None:
        if name not in said:
            said[name] = _hit(rx, flat)
        return said[name]

    def person() -> bool:
        return bool(say("wrong", WRONG_STRONG) or say("later", NOT_NOW_STRONG) or say("no", NOT_INTERESTED)
                    or say("yes", INTERESTED))

    # 4. out of office: pause until the return date
    ooo = _hit(OOO_STRONG, flat)
    ooo_subj = _hit(OOO_SUBJECT, t.subject_raw)
    weak = _hit(OOO_WEAK, flat) if not ooo else None
    if ooo or ooo_subj or (weak and not person()):
        rd, how = return_date(own, now) if own else (None, "")
        if rd is None:
            rd, how = return_date(subj, now)
        given = rd is not None
        conf = 0.95 if ooo and ooo_subj else 0.9 if ooo or ooo_subj else 0.7
        return out("out_of_office", conf, f"absence: {ooo or weak}" if (ooo or weak) else "",
                   f"subject: {ooo_subj}" if ooo_subj else "",
                   f"return date ({how})" if given else "no return date: default pause",
                   return_date=rd if given else today + DEFAULT_PAUSE, return_date_given=given)

    # 5. the person has left (an auto-reply that means "wrong person": stop, maybe a referral)
    left = _hit(LEFT, flat)
    if left:
        return out("wrong_person", 0.9, f"left: {left}", referral=find_referral(t.own_orig, t.sender))

    # 6. other automatic replies (acknowledgements, tickets, unmonitored mailboxes, a delay notice)
    auto = _hit(AUTO, flat) or _hit(AUTO_SUBJECT, t.subject_raw)
    auto_weak = _hit(AUTO_WEAK, flat) or (f"sender {t.sender}" if AUTO_SENDER.match(t.sender) else None)
    if auto or ((auto_weak or delay) and not person()):
        return out("auto_reply", 0.85 if auto else 0.7, f"automatic: {auto or auto_weak or delay}")

    # 7. what the person said
    if not own.strip():
        return out("interested", 0.3, "no words of their own: a person should read it")
    wrong, later = say("wrong", WRONG_STRONG), say("later", NOT_NOW_STRONG)
    no, yes = say("no", NOT_INTERESTED), say("yes", INTERESTED)
    if wrong:
        return out("wrong_person", 0.85, f"wrong person: {wrong}", referral=find_referral(t.own_orig, t.sender))
    if later:
        return out("not_now", 0.8 if not no else 0.7, f"not now: {later}", f"declines: {no}" if no else "")
    if no:
        return out("not_interested", 0.85 if not yes else 0.7, f"not interested: {no}")
    soon = _hit(NOT_NOW_WEAK, flat)
    if soon:
        return out("not_now", 0.6, f"not now: {soon}", f"interest: {yes}" if yes else "")
    if yes:
        return out("interested", 0.8, f"interest: {yes}")
    ref = find_referral(t.own_orig, t.sender)
    if ref and "@" in ref:
        return out("wrong_person", 0.6, "an address given", referral=ref)
    return out("interested", 0.4, "a person replied; nothing more specific recognised")


# --------------------------------------------------------------------------------------------- second opinion

SECOND_OPINION_SYSTEM = (
    "You label replies to a B2B sales email. Answer with exactly one label and nothing else: interested, "
    "not_now, not_interested, unsubscribe, out_of_office, wrong_person, auto_reply. unsubscribe = the person asks "
    "not to be emailed or to be removed; auto_reply includes delivery failures.")
# What each label does to the sequence, from most to least restrictive. The LLM may only move a reply up.
_SAFETY = {"unsubscribe": 0, "not_interested": 1, "not_now": 1, "wrong_person": 1, "interested": 1,
           "out_of_office": 2, "auto_reply": 3}


def second_opinion(llm, body: str | None, subject: str | None = None) -> str | None:
    """One label from the app's LLM chain, or None (no network provider configured, the offline template
    answered, an error, or an answer that is not a label)."""
    try:
        providers = getattr(llm, "providers", None)
        if llm is None or (providers is not None and not any(
                getattr(p, "network", False) and getattr(p, "configured", False) for p in providers)):
            return None
        own = _prepare(body or "", subject, None).own_orig.strip()[:3000]
        prompt = f"Subject: {(subject or '')[:300]}\n\nReply:\n{own or (body or '')[:3000]}\n\nLabel:"
        c = llm.complete(prompt, system=SECOND_OPINION_SYSTEM, max_tokens=8)
        if getattr(c, "provider", "") == "template":
            return None
        m = re.search(r"[a-z_]+", str(getattr(c, "text", "") or "").strip().lower().replace("-", "_").replace(" ", "_"))
        word = m.group(0) if m else ""
        for label in LABELS:
            if word.startswith(label):
                return label
        return None
    except Exception:  # noqa: BLE001 - a second opinion never breaks handling a reply
        return None


def merge(rules: Classification, llm_label: str | None) -> Classification:
    """The rules' class, unless the LLM's is safer: it may turn any reply into an unsubscribe, and an
    out-of-office or auto-reply (that would let the sequence go on) into a human "no" that stops it. It never
    turns a bounce or an unsubscribe into anything else, and never makes a reply a hot lead."""
    if not llm_label or llm_label not in LABELS or llm_label == rules.label or rules.bounce:
        return rules
    if llm_label == "unsubscribe" or (llm_label in ("not_interested", "not_now")
                                      and _SAFETY[llm_label] < _SAFETY[rules.label]):
        return Classification(llm_label, rules.confidence, rules.evidence + (f"second opinion: {llm_label}",),
                              text=rules.text)
    return rules
